// Bring your own model: scripts/export_torchscript.py (Debian's python3-torch) exports a PyTorch
// U-Net; the C++ side must give Python's logits to 1e-4 on the same input.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>

#include "sagitta/segmentation/model.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;

namespace {

void export_and_compare(const std::string& args, int dimensions) {
  if (sagitta::testing::run_command("/usr/bin/python3 -c 'import torch' 2>/dev/null").exit_code != 0)
    GTEST_SKIP() << "python3-torch is not installed (apt-get install python3-torch); the exporter cannot run";
  const fs::path dir = sagitta::testing::scratch_dir();
  const std::string cmd = "/usr/bin/python3 " + (sagitta::testing::source_dir() / "scripts/export_torchscript.py").string() +
                          " --builtin-unet " + args + " -o " + (dir / "model").string() + " --reference " +
                          (dir / "ref").string();
  const auto r = sagitta::testing::run_command(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto card = sagitta::load_card(dir / "model" / "model.json");
  EXPECT_TRUE(card.returns_activation);
  EXPECT_EQ(card.dimensions, dimensions);
  seg::ModelOptions o;
  o.threads = 2;
  const auto model = seg::Model::load(card, o);
  const auto shapes = nlohmann::json::parse(std::ifstream(dir / "ref" / "shapes.json"));
  const auto input = sagitta::testing::read_floats(dir / "ref" / "input.f32");
  const auto expected = sagitta::testing::read_floats(dir / "ref" / "logits.f32");
  std::vector<int64_t> out_shape;
  const auto logits = model.forward(input, shapes["input"].get<std::vector<int64_t>>(), &out_shape);
  EXPECT_EQ(out_shape, shapes["logits"].get<std::vector<int64_t>>());
  ASSERT_EQ(logits.size(), expected.size());
  double worst = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, double(std::abs(logits[i] - expected[i])));
  EXPECT_LT(worst, 1e-4);
  ::testing::Test::RecordProperty("max_abs_difference", std::to_string(worst));
  std::cout << "max |C++ - Python| logits: " << worst << std::endl;
}

}  // namespace

TEST(ExportTorchScript, ThreeDimensionalUNetMatchesPython) {
  export_and_compare("--dimensions 3 --patch 32 24 16 --spacing 1 1 2 --channel CT:ct:0:100 --labels liver spleen "
                     "--base 8 --depth 3 --layer decoder.0 --seed 3",
                     3);
}

TEST(ExportTorchScript, TwoDimensionalUNetMatchesPython) {
  export_and_compare("--dimensions 2 --patch 48 40 --spacing 0.8 0.8 --labels tissue --base 8 --depth 3 --layer bottleneck",
                     2);
}

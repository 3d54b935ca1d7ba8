// The C++ Grad-CAM family of a traced TorchScript model (scripts/export_torchscript.py, layer
// captured by a forward hook) equals a straightforward Python reference (gradcam_reference.py,
// Debian's python3-torch) on the same model and input to 1e-4.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "sagitta/explain/explain.h"
#include "sagitta/segmentation/model.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;
namespace xp = sagitta::explain;
namespace fs = std::filesystem;

namespace {

bool python_torch() {
  return sagitta::testing::run_command("/usr/bin/python3 -c 'import torch' 2>/dev/null").exit_code == 0;
}

struct Exported {
  fs::path dir;
  std::vector<float> input;
  std::vector<int64_t> shape;
};

Exported export_model(const std::string& args) {
  Exported e;
  e.dir = sagitta::testing::scratch_dir();
  const std::string cmd = "/usr/bin/python3 " + (sagitta::testing::source_dir() / "scripts/export_torchscript.py").string() +
                          " --builtin-unet " + args + " -o " + (e.dir / "model").string() + " --reference " +
                          (e.dir / "ref").string();
  const auto r = sagitta::testing::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto shapes = nlohmann::json::parse(std::ifstream(e.dir / "ref" / "shapes.json"));
  e.shape = shapes["input"].get<std::vector<int64_t>>();
  e.input = sagitta::testing::read_floats(e.dir / "ref" / "input.f32");
  return e;
}

// Largest |C++ - Python| and the reference's largest value.
std::pair<double, double> compare(const Exported& e, const seg::Model& model, int label, const std::string& method,
                                  const std::string& score, const std::vector<std::uint8_t>& region) {
  std::string extra;
  if (!region.empty()) {
    std::ofstream f(e.dir / "region.u8", std::ios::binary);
    f.write(reinterpret_cast<const char*>(region.data()), std::streamsize(region.size()));
    extra = " --region " + (e.dir / "region.u8").string();
  }
  const std::string cmd = "/usr/bin/python3 " + (sagitta::testing::source_dir() / "tests/explain/gradcam_reference.py").string() +
                          " --model " + (e.dir / "model" / "model.pt").string() + " --input " +
                          (e.dir / "ref" / "input.f32").string() + " --shape '" + nlohmann::json(e.shape).dump() +
                          "' --label " + std::to_string(label) + " --method '" + method + "' --score " + score + extra +
                          " -o " + (e.dir / "cam.f32").string();
  const auto r = sagitta::testing::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto expected = sagitta::testing::read_floats(e.dir / "cam.f32");
  const auto m = xp::parse_method(method);
  const auto cam = xp::explain_patch(model, e.input, e.shape, label, *m,
                                     score == "mean" ? xp::ScoreReduction::Mean : xp::ScoreReduction::Sum, region);
  EXPECT_EQ(cam.size(), expected.size());
  double worst = 0, peak = 0;
  for (std::size_t i = 0; i < std::min(cam.size(), expected.size()); ++i) {
    worst = std::max(worst, double(std::abs(cam[i] - expected[i])));
    peak = std::max(peak, double(expected[i]));
  }
  std::cout << method << " label " << label << " (" << score << (region.empty() ? ", predicted mask" : ", region")
            << "): max |C++ - Python| " << worst << ", reference max " << peak << " (" << r.out.substr(0, r.out.find('\n'))
            << ")" << std::endl;
  return {worst, peak};
}

// The label most voxels are predicted as (random weights: not necessarily 1).
int predicted_label(const seg::Model& model, const Exported& e) {
  std::vector<int64_t> shape;
  const auto logits = model.forward(e.input, e.shape, &shape);
  const int64_t classes = shape[1];
  int64_t spatial = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) spatial *= shape[i];
  std::vector<long> counts(std::size_t(classes), 0);
  for (int64_t v = 0; v < spatial; ++v) {
    int64_t best = 0;
    for (int64_t k = 1; k < classes; ++k)
      if (logits[std::size_t(k * spatial + v)] > logits[std::size_t(best * spatial + v)]) best = k;
    ++counts[std::size_t(best)];
  }
  return int(std::max_element(counts.begin(), counts.end()) - counts.begin());
}

}  // namespace

TEST(GradCamReference, ThreeDimensionalLowResolutionLayerMatchesPython) {
  if (!python_torch()) GTEST_SKIP() << "python3-torch is not installed (apt-get install python3-torch)";
  // decoder.0 is the deepest decoder block (half resolution here): the map is upsampled trilinearly.
  const Exported e = export_model("--dimensions 3 --patch 24 20 16 --spacing 1 1 2 --labels liver spleen --base 4 --depth 3 "
                                  "--layer decoder.0 --seed 5");
  seg::ModelOptions o;
  o.threads = 1;
  const auto model = seg::Model::load(sagitta::load_card(e.dir / "model" / "model.json"), o);
  const int label = predicted_label(model, e);
  for (const std::string method : {"gradcam", "gradcam++", "hirescam"}) {
    const auto [worst, peak] = compare(e, model, label, method, "sum", {});
    EXPECT_GT(peak, 0) << method << ": the reference map is zero, the comparison says nothing";
    EXPECT_LT(worst, 1e-4) << method;
    EXPECT_LE(worst, 1e-4 * peak) << method << ": also relative to the map's scale";
    ::testing::Test::RecordProperty(method + "_max_abs_difference", std::to_string(worst));
  }
  // A box region and the mean score.
  std::vector<std::uint8_t> region(std::size_t(16 * 20 * 24), 0);
  for (int z = 4; z < 12; ++z)
    for (int y = 5; y < 15; ++y)
      for (int x = 6; x < 18; ++x) region[std::size_t((z * 20 + y) * 24 + x)] = 1;
  for (const std::string score : {"mean", "sum"}) {
    const auto [worst, peak] = compare(e, model, 1, "gradcam", score, region);
    EXPECT_GT(peak, 0) << score;
    EXPECT_LT(worst, 1e-4) << score;
    EXPECT_LE(worst, 1e-4 * peak) << score << ": relative to the map's scale (mean scores give tiny maps)";
  }
}

TEST(GradCamReference, TwoDimensionalFullResolutionLayerMatchesPython) {
  if (!python_torch()) GTEST_SKIP() << "python3-torch is not installed (apt-get install python3-torch)";
  const Exported e = export_model("--dimensions 2 --patch 40 32 --spacing 0.8 0.8 --labels tissue bone --base 8 --depth 3 "
                                  "--layer decoder.1 --seed 2");
  seg::ModelOptions o;
  o.threads = 1;
  const auto model = seg::Model::load(sagitta::load_card(e.dir / "model" / "model.json"), o);
  const int label = predicted_label(model, e);
  for (const std::string method : {"gradcam", "gradcam++", "hirescam"}) {
    const auto [worst, peak] = compare(e, model, label, method, "sum", {});
    EXPECT_GT(peak, 0) << method;
    EXPECT_LT(worst, 1e-4) << method;
    EXPECT_LE(worst, 1e-4 * peak) << method;
  }
}

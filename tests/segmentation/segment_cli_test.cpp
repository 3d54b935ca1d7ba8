// `sagitta segment` end to end: outputs, geometry, report, and bad input leaving nothing behind.
#include <gtest/gtest.h>

#include <fstream>

#include "phantoms.h"
#include "sagitta/core/volume_io.h"
#include "script_models.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;
using sagitta::testing::run_command;

namespace {

std::string segment(const std::string& args) {
  return sagitta::testing::sagitta_executable().string() + " segment --no-progress " + args;
}

}  // namespace

TEST(SegmentCli, WritesLabelsProbabilitiesAndReport) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const fs::path card = sagitta::testing::write_threshold_model(dir / "model");
  auto image = sagitta::testing::make_volume({40, 36, 12}, {0.9, 0.9, 2.5}, [](double x, double y, double z) {
    return (x - 11.95) * (x - 11.95) + (y - 22.9) * (y - 22.9) + (z - 113.75) * (z - 113.75) < 64 ? 400.f : -50.f;
  }, {-3, 4, 100}, 10);
  sagitta::WriteOptions wo;
  wo.pixel_type = sagitta::OutputPixelType::Float;
  sagitta::write_volumes({image}, dir / "ct.nrrd", wo);

  const auto r = run_command(segment((dir / "ct.nrrd").string() + " --model " + card.string() + " -o " +
                                     (dir / "out").string() + " --probabilities --threads 2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dense"), std::string::npos) << r.out;
  auto labels = sagitta::read_volume(dir / "out" / "labels.nrrd");
  EXPECT_EQ(labels->GetLargestPossibleRegion(), image->GetLargestPossibleRegion());
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(labels->GetOrigin()[i], image->GetOrigin()[i], 1e-9);
    EXPECT_NEAR(labels->GetSpacing()[i], image->GetSpacing()[i], 1e-9);
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(labels->GetDirection()[i][j], image->GetDirection()[i][j], 1e-9);
  }
  EXPECT_TRUE(fs::exists(dir / "out" / "probabilities.nrrd"));
  const auto report = nlohmann::json::parse(std::ifstream(dir / "out" / "report.json"));
  EXPECT_EQ(report["model"]["weights_sha256"], sagitta::load_card(card).sha256);
  EXPECT_EQ(report["labels"][1]["name"], "dense");
  EXPECT_GT(report["labels"][1]["volume_ml"].get<double>(), 1.5);  // a 8 mm ball is 2.1 mL
  EXPECT_LT(report["labels"][1]["volume_ml"].get<double>(), 2.8);
  EXPECT_TRUE(report["timings_s"].contains("forward"));
  for (const auto& e : fs::directory_iterator(dir / "out"))
    EXPECT_NE(e.path().filename().string().front(), '.') << "left behind: " << e.path();

  const auto n = run_command(segment((dir / "ct.nrrd").string() + " --model " + card.string() + " -o " +
                                     (dir / "out_nifti").string() + " --format nifti --json"));
  ASSERT_EQ(n.exit_code, 0) << n.err;
  EXPECT_TRUE(fs::exists(dir / "out_nifti" / "labels.nii.gz"));
  EXPECT_EQ(nlohmann::json::parse(n.out)["command"], "segment");
}

TEST(SegmentCli, SegmentsADicomFolder) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const fs::path demo = sagitta::testing::source_dir() / "testdata/demo/ct_phantom";
  if (!fs::exists(demo)) GTEST_SKIP() << "demo series not found at " << demo;
  const auto r = run_command(segment(demo.string() + " --model " + sagitta::testing::write_threshold_model(dir / "model").string() + " -o " +
                                     (dir / "out").string() + " --crop-body --largest-component"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(std::ifstream(dir / "out" / "report.json"));
  EXPECT_EQ(report["inputs"][0]["kind"], "dicom");
  EXPECT_EQ(report["geometry"], report["inputs"][0]["geometry"]);
}

TEST(SegmentCli, BadInputGivesOneLineAndWritesNothing) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const fs::path card = sagitta::testing::write_threshold_model(dir / "model");
  auto good = sagitta::testing::make_volume({20, 20, 20}, {1, 1, 1}, [](double, double, double) { return 0.f; });
  auto nan = sagitta::testing::make_volume({20, 20, 20}, {1, 1, 1}, [](double x, double, double) { return x > 10 ? NAN : 0.f; });
  sagitta::WriteOptions wo;
  wo.pixel_type = sagitta::OutputPixelType::Float;
  sagitta::write_volumes({good}, dir / "good.nrrd", wo);
  sagitta::write_volumes({nan}, dir / "nan.nrrd", wo);
  // A card whose weights changed.
  fs::create_directories(dir / "tampered");
  fs::copy_file(card, dir / "tampered" / "model.json");
  std::ofstream(dir / "tampered" / "model.pt") << "tampered";
  // A card pointing at a file that is not TorchScript but has the right hash.
  fs::create_directories(dir / "junk");
  std::ofstream(dir / "junk" / "model.pt") << "not a model";
  auto j = nlohmann::json::parse(std::ifstream(card));
  j["sha256"] = sagitta::sha256_file(dir / "junk" / "model.pt");
  std::ofstream(dir / "junk" / "model.json") << j.dump();

  const std::vector<std::pair<std::string, std::string>> cases = {
      {(dir / "nan.nrrd").string() + " --model " + card.string(), "NaN"},
      {(dir / "good.nrrd").string() + " --model " + (dir / "tampered" / "model.json").string(), "sha256 mismatch"},
      {(dir / "good.nrrd").string() + " --model " + (dir / "junk" / "model.json").string(), "not a TorchScript model"},
      {(dir / "good.nrrd").string() + " " + (dir / "good.nrrd").string() + " --model " + card.string(), "expects 1 input channel"},
  };
  for (const auto& [args, needle] : cases) {
    const auto r = run_command(segment(args + " -o " + (dir / "out").string()));
    EXPECT_EQ(r.exit_code, 3) << args << "\n" << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(dir / "out")) << args;
  }
  // A missing input is a bad command line (exit 2).
  const auto r = run_command(segment((dir / "missing.nrrd").string() + " --model " + card.string() + " -o " + (dir / "out").string()));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out"));
}

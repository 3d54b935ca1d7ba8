// The shipped demo model on real CT (TotalSegmentator's example, skipped without the shared
// data). Slow: four runs of the 2D model over the volume.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "sagitta/core/volume_io.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;
using sagitta::testing::run_command;

namespace {
std::string explain(const std::string& args) {
  return sagitta::testing::sagitta_executable().string() + " explain " + args + " --no-progress --threads 2";
}
}  // namespace

// The shipped demo model on real CT: `segment --explain` gives exactly the labels of `segment`
// (one pass over the windows for both), a heatmap per predicted organ in the source geometry, and
// `explain` puts most of the liver's Grad-CAM mass on the predicted liver.
TEST(ExplainCli, SegmentExplainOnRealCtKeepsTheLabelsAndAddsHeatmaps) {
  SAGITTA_REQUIRE_EXTERNAL(ct, "ct/totalsegmentator/example_ct_sm.nii.gz");
  const fs::path dir = sagitta::testing::scratch_dir();
  const fs::path card = sagitta::testing::source_dir() / "testdata/models/demo/model.json";
  const std::string seg_cmd = sagitta::testing::sagitta_executable().string() + " segment " + ct.string() + " --model " +
                              card.string() + " --no-progress --threads 2 -o ";
  auto r = run_command(seg_cmd + (dir / "plain").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = run_command(seg_cmd + (dir / "explained").string() + " --explain");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto a = sagitta::read_volume(dir / "plain" / "labels.nrrd");
  const auto b = sagitta::read_volume(dir / "explained" / "labels.nrrd");
  ASSERT_EQ(a->GetLargestPossibleRegion(), b->GetLargestPossibleRegion());
  const std::size_t n = a->GetBufferedRegion().GetNumberOfPixels();
  EXPECT_TRUE(std::equal(a->GetBufferPointer(), a->GetBufferPointer() + n, b->GetBufferPointer()));
  const auto report = nlohmann::json::parse(std::ifstream(dir / "explained" / "report.json"));
  ASSERT_TRUE(report.contains("explanation"));
  EXPECT_EQ(report["explanation"]["method"], "gradcam");
  EXPECT_EQ(report["windows"]["count"], report["explanation"]["windows"]["count"]);
  const auto source = sagitta::read_volume(ct);
  for (const auto& l : report["explanation"]["labels"]) {
    const std::string name = l["name"];
    EXPECT_TRUE(fs::exists(dir / "explained" / ("montage_" + name + ".png"))) << name;
    const auto h = sagitta::read_volume(dir / "explained" / ("heatmap_" + name + ".nrrd"));
    EXPECT_EQ(h->GetLargestPossibleRegion(), source->GetLargestPossibleRegion()) << name;
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(h->GetOrigin()[i], source->GetOrigin()[i], 1e-9) << name;
  }
  ASSERT_FALSE(report["explanation"]["labels"].empty());

  r = run_command(explain(ct.string() + " --model " + card.string() + " --label liver --no-sanity -o " + (dir / "liver").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto liver = nlohmann::json::parse(std::ifstream(dir / "liver" / "report.json"))["explanation"]["labels"][0];
  std::cout << "liver on real CT: " << liver.dump() << std::endl;
  EXPECT_GT(liver["mass_in_target"].get<double>(), 0.5);
  EXPECT_LT(liver["deletion"]["area"].get<double>(), liver["deletion"]["random_order_area"].get<double>());
}

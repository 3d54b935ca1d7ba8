// `sagitta calibrate` and the review flags of `sagitta segment`, end to end on real data: the demo
// model (trained on TotalSegmentator's example CT) calibrated on its own training pair and its
// held-out pair, then given the real CT, the real MR, noise, a metal-bright region, a cut-off
// field of view and a CT at a spacing far outside the training range.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <random>
#include <set>

#include "sagitta/core/volume_io.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;
namespace st = sagitta::testing;
using nlohmann::json;

namespace {

std::string command(const std::string& args) { return st::sagitta_executable().string() + " " + args; }

// The input-level flags' checks of a report (subject "input").
std::set<std::string> input_checks(const json& report) {
  std::set<std::string> out;
  for (const auto& f : report["qa"]["flags"]) out.insert(f["check"].get<std::string>());
  return out;
}

// The shipped demo card carries the profile and thresholds `sagitta calibrate` measured on these
// two pairs (testdata/models/demo/README.md); CalibrationRecordsTheProfileAndScoresTheFlags
// measures them again.
class ReviewCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto root = st::external_data();
    if (!root || !fs::exists(*root / "ct/totalsegmentator/example_ct_sm.nii.gz"))
      GTEST_SKIP() << "external data 'ct/totalsegmentator' not found; set SAGITTA_EXTERNAL_DATA";
    data_ = *root / "ct/totalsegmentator";
    work_ = st::scratch_dir();
  }
  static fs::path demo_card() { return st::source_dir() / "testdata/models/demo/model.json"; }
  // Segments `input` with the demo card and returns its report.json.
  json segment(const fs::path& input, const std::string& name, const std::string& extra = "") {
    const fs::path out = work_ / name;
    const auto r = st::run_command(command(fmt::format("segment --no-progress {} --model {} -o {} {}", st::shell_quote(input),
                                                       st::shell_quote(demo_card()), st::shell_quote(out), extra)));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    last_out_ = r.out;
    std::ifstream f(out / "report.json");
    return json::parse(f);
  }
  fs::path data_, work_;
  std::string last_out_;
};

}  // namespace

TEST_F(ReviewCli, CalibrationRecordsTheProfileAndScoresTheFlags) {
  const auto run = st::run_command(command(fmt::format(
      "calibrate --model {} --image {} --label {} --image {} --label {} -o {}", st::shell_quote(demo_card()),
      st::shell_quote(data_ / "example_ct_sm.nii.gz"), st::shell_quote(data_ / "example_seg.nii.gz"),
      st::shell_quote(data_ / "example_ct_dicom"), st::shell_quote(data_ / "example_seg_dicom.nii.gz"),
      st::shell_quote(work_ / "calibrated"))));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  const json card = json::parse(std::ifstream(work_ / "calibrated/model.json"));
  ASSERT_TRUE(card.contains("training_profile"));
  const json& p = card["training_profile"];
  EXPECT_EQ(p["cases"], 2);
  EXPECT_EQ(p["source"], "sagitta calibrate");
  ASSERT_EQ(p["foreground_intensity"].size(), 1u);
  // Abdominal organs in CT: soft tissue, tens of HU.
  EXPECT_GT(p["foreground_intensity"][0]["median"].get<double>(), 0);
  EXPECT_LT(p["foreground_intensity"][0]["median"].get<double>(), 200);
  EXPECT_TRUE(card["review_thresholds"].contains("min_mean_probability"));
  const json report = json::parse(std::ifstream(work_ / "calibrated/calibration.json"));
  EXPECT_EQ(report["cases"].size(), 2u);
  EXPECT_TRUE(report["after"]["confidence_flags"].contains("precision"));
  EXPECT_NE(run.out.find("needs_review"), std::string::npos) << run.out;
  // The held-out pair's kidneys (Dice 0) and stomach (Dice 0.32) are the bad structures; the
  // learned cut on the mean probability finds both without flagging a good one.
  EXPECT_EQ(report["bad_structures"], 2);
  EXPECT_EQ(report["after"]["confidence_flags"]["recall"], 1.0);
  EXPECT_EQ(report["after"]["confidence_flags"]["precision"], 1.0);
  // The shipped demo card holds what this measures.
  const json shipped = json::parse(std::ifstream(demo_card()));
  EXPECT_EQ(shipped["training_profile"], card["training_profile"]);
  EXPECT_NEAR(shipped["review_thresholds"]["min_mean_probability"].get<double>(),
              card["review_thresholds"]["min_mean_probability"].get<double>(), 1e-9);
}

TEST_F(ReviewCli, TheRealCtPassesTheInputChecks) {
  const json r = segment(data_ / "example_ct_dicom", "ct");
  EXPECT_EQ(input_checks(r), std::set<std::string>{}) << r["qa"]["flags"].dump(2);
  EXPECT_EQ(r["qa"]["input"]["modality"], "CT");
  for (const auto& s : r["qa"]["skipped"]) EXPECT_NE(s["check"], "modality") << "the DICOM CT's modality is checked";
  // The liver is found with confidence.
  bool liver = false;
  for (const auto& s : r["qa"]["structures"])
    if (s["name"] == "liver") {
      liver = true;
      EXPECT_GT(s["volume_ml"].get<double>(), 50);
      EXPECT_GT(s["mean_probability"].get<double>(), 0.8);
    }
  EXPECT_TRUE(liver);
}

TEST_F(ReviewCli, MrIntoTheCtModelIsFlagged) {
  const json r = segment(data_ / "example_mr_sm.nii.gz", "mr");
  EXPECT_TRUE(r["qa"]["needs_review"].get<bool>());
  const auto checks = input_checks(r);
  EXPECT_TRUE(checks.count("intensity")) << r["qa"]["flags"].dump(2);
  EXPECT_NE(last_out_.find("NEEDS REVIEW"), std::string::npos) << last_out_;
  // The NIfTI says no modality: that check is skipped, with the reason.
  bool skipped = false;
  for (const auto& s : r["qa"]["skipped"]) skipped |= s["check"] == "modality";
  EXPECT_TRUE(skipped);
}

TEST_F(ReviewCli, NoiseIsFlagged) {
  auto ct = sagitta::read_volume(data_ / "example_ct_sm.nii.gz");
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1000.0f, 1500.0f);
  float* v = ct->GetBufferPointer();
  for (std::size_t i = 0; i < ct->GetBufferedRegion().GetNumberOfPixels(); ++i) v[i] = u(rng);
  const fs::path noise = work_ / "noise.nrrd";
  sagitta::write_volumes({ct}, noise, {});
  const json r = segment(noise, "noise");
  EXPECT_TRUE(r["qa"]["needs_review"].get<bool>()) << r["qa"].dump(2);
  EXPECT_TRUE(input_checks(r).count("intensity")) << r["qa"]["flags"].dump(2);
  for (const auto& s : r["qa"]["structures"]) {
    std::set<std::string> checks;
    for (const auto& f : s["flags"]) checks.insert(f["check"].get<std::string>());
    if (s["volume_ml"].get<double>() > 0) EXPECT_TRUE(checks.count("components")) << s.dump(2);
  }
}

TEST_F(ReviewCli, ACutOffFieldOfViewIsFlagged) {
  auto ct = sagitta::read_volume(data_ / "example_ct_sm.nii.gz");
  // Keep the middle third of the slices: the organs run out of the volume at both ends.
  const auto size = ct->GetLargestPossibleRegion().GetSize();
  auto cut = sagitta::Image::New();
  sagitta::Image::RegionType region;
  region.SetSize({size[0], size[1], size[2] / 3});
  cut->SetRegions(region);
  auto origin = ct->GetOrigin();
  itk::Index<3> first{{0, 0, long(size[2] / 3)}};
  ct->TransformIndexToPhysicalPoint(first, origin);
  cut->SetOrigin(origin);
  cut->SetSpacing(ct->GetSpacing());
  cut->SetDirection(ct->GetDirection());
  cut->Allocate();
  const std::size_t plane = size[0] * size[1];
  std::copy_n(ct->GetBufferPointer() + plane * (size[2] / 3), plane * (size[2] / 3), cut->GetBufferPointer());
  const fs::path file = work_ / "cut.nrrd";
  sagitta::write_volumes({cut}, file, {});
  const json r = segment(file, "cut");
  bool cut_off = false;
  for (const auto& s : r["qa"]["structures"])
    for (const auto& f : s["flags"]) cut_off |= f["check"] == "cut_off";
  EXPECT_TRUE(cut_off) << r["qa"].dump(2);
  EXPECT_TRUE(r["qa"]["needs_review"].get<bool>());
}

TEST_F(ReviewCli, AMetalBrightRegionInsideTheLiverIsFlagged) {
  // A 30 x 30-voxel column at 3000 HU through the liver on every slice (the CT normalisation clips
  // it to soft tissue, so the model calls it liver): its voxels are nothing the model was trained on.
  auto ct = sagitta::read_volume(data_ / "example_ct_sm.nii.gz");
  const auto truth = sagitta::read_volume(data_ / "example_seg.nii.gz");
  ASSERT_EQ(truth->GetLargestPossibleRegion(), ct->GetLargestPossibleRegion());
  const auto size = ct->GetLargestPossibleRegion().GetSize();
  double cx = 0, cy = 0, n = 0;
  const float* t = truth->GetBufferPointer();
  for (std::size_t i = 0; i < truth->GetBufferedRegion().GetNumberOfPixels(); ++i)
    if (t[i] == 5) cx += double(i % size[0]), cy += double(i / size[0] % size[1]), ++n;  // 5: the liver
  ASSERT_GT(n, 0);
  const long x0 = long(cx / n) - 15, y0 = long(cy / n) - 15;
  for (std::size_t z = 0; z < size[2]; ++z)
    for (long y = y0; y < y0 + 30; ++y)
      for (long x = x0; x < x0 + 30; ++x) ct->SetPixel({{x, y, long(z)}}, 3000.0f);
  const fs::path file = work_ / "metal.nrrd";
  sagitta::write_volumes({ct}, file, {});
  const json r = segment(file, "metal");
  bool flagged = false;
  for (const auto& s : r["qa"]["structures"])
    if (s["name"] == "liver")
      for (const auto& f : s["flags"]) flagged |= f["check"] == "outside_training_range";
  EXPECT_TRUE(flagged) << r["qa"]["structures"].dump(2);
  // The untouched CT's liver is not.
  const json clean = segment(data_ / "example_ct_sm.nii.gz", "clean");
  for (const auto& s : clean["qa"]["structures"])
    for (const auto& f : s["flags"]) EXPECT_NE(f["check"], "outside_training_range") << s.dump(2);
}

TEST_F(ReviewCli, SpacingFarOutsideTheTrainingRangeIsFlagged) {
  auto ct = sagitta::read_volume(data_ / "example_ct_sm.nii.gz");
  auto spacing = ct->GetSpacing();
  for (int a = 0; a < 3; ++a) spacing[a] /= 4;  // the same voxels said to be 4x smaller (a small model grid)
  ct->SetSpacing(spacing);
  const fs::path file = work_ / "fine.nrrd";
  sagitta::write_volumes({ct}, file, {});
  const json r = segment(file, "fine");
  EXPECT_TRUE(input_checks(r).count("spacing")) << r["qa"]["flags"].dump(2);
  EXPECT_TRUE(input_checks(r).count("field_of_view")) << r["qa"]["flags"].dump(2);
}

TEST_F(ReviewCli, CommandLineThresholdsWinAndBadOnesAreRefused) {
  const json r = segment(data_ / "example_ct_dicom", "strict", "--review-threshold min_mean_probability=1.01");
  EXPECT_EQ(r["qa"]["thresholds"]["min_mean_probability"], 1.01);
  EXPECT_TRUE(r["qa"]["needs_review"].get<bool>());
  const auto bad = st::run_command(command(fmt::format("segment --no-progress {} --model {} -o {} --review-threshold nonsense=1",
                                                       st::shell_quote(data_ / "example_ct_dicom"),
                                                       st::shell_quote(demo_card()),
                                                       st::shell_quote(work_ / "refused"))));
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("unknown review threshold"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(work_ / "refused"));
}

// The DICOM SEG paths of the command line: `sagitta convert seg.dcm -o labels.nrrd` on dcmqi's
// real SEGs, and `sagitta segment ... --dicom-seg` whose SEG converts back to the label map it
// wrote beside it.
#include <gtest/gtest.h>
#include <itkImageFileReader.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <sstream>

#include "sagitta/dicom/seg.h"
#include "support/dicom_checks.h"
#include "support/read_4d.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace st = sagitta::testing;

std::string sagitta(const std::string& args) { return fmt::format("'{}' {}", st::sagitta_executable().string(), args); }

TEST(ConvertSeg, DcmqiSegsToLabelMaps) {
  SAGITTA_REQUIRE_EXTERNAL(data, "seg/dcmqi/segmentations");
  const fs::path out = st::scratch_dir();
  auto r = st::run_command(sagitta(fmt::format("convert '{}' -o '{}' --reference '{}' --json", (data / "liver.dcm").string(),
                                               (out / "liver.nrrd").string(), (data / "ct-3slice").string())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["segmentation_type"], "BINARY");
  EXPECT_EQ(report["segments"][0]["name"], "Liver");
  EXPECT_EQ(sagitta::testing::label_differences(*sagitta::testing::read_label_map(out / "liver.nrrd"), *sagitta::testing::read_label_map(data / "liver_seg.nrrd")), 0u);

  // Overlapping segments: a warning, and one mask per segment beside the label map.
  r = st::run_command(sagitta(fmt::format("convert '{}' -o '{}'", (data / "partial_overlaps.dcm").string(),
                                          (out / "po.nrrd").string())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("overlap"), std::string::npos) << r.err;
  for (int s = 1; s <= 5; ++s) EXPECT_TRUE(fs::exists(out / fmt::format("po-segment-{}.nrrd", s))) << s;

  // A reference series the SEG was not made from: one line, exit 3, nothing written.
  r = st::run_command(sagitta(fmt::format("convert '{}' -o '{}' --reference '{}'", (data / "liver.dcm").string(),
                                          (out / "bad.nrrd").string(),
                                          (st::source_dir() / "testdata" / "demo" / "ct_phantom").string())));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(out / "bad.nrrd"));
}

TEST(SegmentDicomSeg, SegConvertsBackToTheLabelMapBesideIt) {
  const fs::path out = st::scratch_dir();
  const fs::path phantom = st::source_dir() / "testdata" / "demo" / "ct_phantom";
  const fs::path card = st::source_dir() / "testdata" / "models" / "demo" / "model.json";
  auto r = st::run_command(sagitta(fmt::format("segment '{}' --model '{}' -o '{}' --dicom-seg --threads 2 --json --no-progress",
                                               phantom.string(), card.string(), (out / "seg").string())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  ASSERT_TRUE(report["dicom"]["seg"].is_object()) << report["dicom"].dump();
  ASSERT_TRUE(fs::exists(out / "seg" / "seg.dcm"));
  if (st::run_command("command -v dciodvfy").exit_code == 0) {
    const auto v = st::run_command(fmt::format("dciodvfy '{}'", (out / "seg" / "seg.dcm").string()));
    EXPECT_EQ((v.out + v.err).find("\nError"), std::string::npos) << v.err;
    EXPECT_NE((v.out + v.err).rfind("Error", 0), 0u) << v.err;
  }
  r = st::run_command(sagitta(fmt::format("convert '{}' -o '{}' --labels-from '{}' --reference '{}'",
                                          (out / "seg" / "seg.dcm").string(), (out / "back.nrrd").string(), card.string(),
                                          phantom.string())));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(sagitta::testing::label_differences(*sagitta::testing::read_label_map(out / "back.nrrd"), *sagitta::testing::read_label_map(out / "seg" / "labels.nrrd")), 0u);

  // --dicom-seg needs DICOM input: a clear error, no output folder left behind.
  r = st::run_command(sagitta(fmt::format("segment '{}' --model '{}' -o '{}' --dicom-seg --no-progress",
                                          (out / "back.nrrd").string(), card.string(), (out / "nope").string())));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("--dicom-seg"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out / "nope"));
}

}  // namespace

namespace {

// `segment --dicom-sr --rtstruct --seg-type labelmap --slicer-seg`: every object beside the
// label map, the RTSTRUCT converting back to that label map exactly, and the SR, RTSTRUCT and
// LABELMAP SEG readable by pydicom's peers (checked in dicom_interop_test).
TEST(SegmentResults, SrRtstructLabelmapAndSlicerSegBesideTheLabels) {
  const fs::path out = st::scratch_dir();
  const fs::path phantom = st::source_dir() / "testdata" / "demo" / "ct_phantom";
  const fs::path card = st::source_dir() / "testdata" / "models" / "demo" / "model.json";
  auto r = st::run_command(sagitta(fmt::format(
      "segment {} --model {} -o {} --dicom-sr --rtstruct --seg-type labelmap --slicer-seg --threads 2 --json --no-progress",
      st::shell_quote(phantom), st::shell_quote(card), st::shell_quote(out / "seg"))));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto report = nlohmann::json::parse(r.out);
  EXPECT_EQ(report["dicom"]["seg"]["type"], "labelmap");
  EXPECT_TRUE(report["dicom"]["sr"].is_object()) << report["dicom"].dump();
  EXPECT_TRUE(report["dicom"]["rtstruct"].is_object()) << report["dicom"].dump();
  for (const char* f : {"seg.dcm", "sr.dcm", "rtstruct.dcm", "labels.seg.nrrd", "labels.nrrd"})
    EXPECT_TRUE(fs::exists(out / "seg" / f)) << f;
  // dciodvfy: no errors, except that Debian 12's version does not know the LABELMAP SEG's SOP class
  // as a segmentation and refuses the SR's Referenced Segment Number on it.
  for (const char* f : {"sr.dcm", "rtstruct.dcm"}) {
    const auto check = st::dciodvfy(out / "seg" / f);
    std::istringstream lines(check.report);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind("Error", 0) == 0) {
        EXPECT_NE(line.find("not segmentation - attribute <ReferencedSegmentNumber>"), std::string::npos) << f << ": " << line;
      }
  }
  const auto labels = st::read_label_map(out / "seg" / "labels.nrrd");
  EXPECT_EQ(st::label_differences(*st::read_label_map(out / "seg" / "labels.seg.nrrd"), *labels), 0u);

  // RTSTRUCT -> label map on the phantom's grid, values from the card's names.
  r = st::run_command(sagitta(fmt::format("convert {} --reference {} --labels-from {} -o {}",
                                          st::shell_quote(out / "seg" / "rtstruct.dcm"), st::shell_quote(phantom),
                                          st::shell_quote(card), st::shell_quote(out / "back.nrrd"))));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(st::label_differences(*st::read_label_map(out / "back.nrrd"), *labels), 0u);
  // The LABELMAP SEG too.
  r = st::run_command(sagitta(fmt::format("convert {} --reference {} --labels-from {} -o {}",
                                          st::shell_quote(out / "seg" / "seg.dcm"), st::shell_quote(phantom),
                                          st::shell_quote(card), st::shell_quote(out / "seg-back.seg.nrrd"))));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(st::label_differences(*st::read_label_map(out / "seg-back.seg.nrrd"), *labels), 0u);

  // Without the series it outlines, an RTSTRUCT cannot become a label map: one line.
  r = st::run_command(sagitta(fmt::format("convert {} -o {}", st::shell_quote(out / "seg" / "rtstruct.dcm"),
                                          st::shell_quote(out / "bad.nrrd"))));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(out / "bad.nrrd"));
}

}  // namespace

// DICOM SEG writing and reading: round trips on synthetic and real series, the real SEG objects
// that dcmqi made (QIICR/dcmqi data/segmentations), dciodvfy and pydicom as outside judges, and
// bad input.
#include <gtest/gtest.h>
#include <itkImageFileReader.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/seg.h"
#include "support/synthetic_dicom.h"
#include "support/read_4d.h"
#include "support/dicom_checks.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace st = sagitta::testing;

dcm::LoadedSeries load_folder(const fs::path& dir) { return dcm::load(dcm::select_stack(dcm::scan({dir}), "")); }

dcm::LabelMap::Pointer new_labels(const itk::ImageBase<3>& grid) {
  auto l = dcm::LabelMap::New();
  l->CopyInformation(&grid);
  l->SetRegions(grid.GetLargestPossibleRegion());
  l->Allocate(true);
  return l;
}

std::vector<dcm::SegmentDescription> describe(const dcm::LabelMap& labels, const std::string& prefix = "label") {
  std::set<int> values;
  const std::size_t n = labels.GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i)
    if (labels.GetBufferPointer()[i]) values.insert(labels.GetBufferPointer()[i]);
  std::vector<dcm::SegmentDescription> d;
  for (int v : values) d.push_back({v, fmt::format("{} {}", prefix, v), {40 * v % 256, 200, 100}, {}, {}});
  return d;
}

// dciodvfy (dicom3tools) must report no errors. Warnings are allowed (it also warns about things
// the standard permits, e.g. attributes retired since its release).
void expect_dciodvfy_clean(const fs::path& file) {
  const st::IodCheck check = st::dciodvfy(file);
  if (!check.installed) {
    std::cout << "[ NOTE ] dciodvfy not installed (Debian package dicom3tools); IOD check skipped\n";
    return;
  }
  EXPECT_EQ(check.errors, 0u) << file << ":\n" << check.report;
}

// A small synthetic CT with three labelled blocks, two empty slices at the ends.
struct Synthetic {
  fs::path dir;
  dcm::LoadedSeries series;
  dcm::LabelMap::Pointer labels;
};

Synthetic synthetic(const fs::path& root, int rows = 24, int columns = 20, int slices = 8) {
  st::SeriesSpec spec;
  spec.rows = rows;
  spec.columns = columns;
  spec.slices = slices;
  spec.pixel_spacing = {0.8, 0.7};
  spec.slice_spacing = 2.5;
  spec.orientation = {1, 0, 0, 0, 0.8, -0.6};  // oblique: positions must follow the grid
  spec.first_position = {-10, 20, 30};
  Synthetic s;
  s.dir = root / "ct";
  st::write_series(spec, s.dir);
  s.series = load_folder(s.dir);
  const auto& grid = *s.series.volumes.front();
  s.labels = new_labels(grid);
  for (int k = 1; k < slices - 1; ++k)
    for (int j = 0; j < rows; ++j)
      for (int i = 0; i < columns; ++i) {
        std::uint16_t v = 0;
        if (i < columns / 2 && j < rows / 2) v = 1;
        else if (i >= columns / 2 && j < rows / 2 && k > 2) v = 2;
        else if (j > rows * 2 / 3 && (i + k) % 3 == 0) v = 3;
        s.labels->SetPixel({{i, j, k}}, v);
      }
  return s;
}

TEST(Seg, SyntheticRoundTripIsIdentical) {
  const fs::path dir = st::scratch_dir();
  auto s = synthetic(dir);
  const auto& grid = *s.series.volumes.front();
  const auto segments = describe(*s.labels);
  ASSERT_EQ(segments.size(), 3u);
  dcm::SegWriteOptions options;
  options.algorithm_name = "demo-unet";
  options.algorithm_version = "0.1";
  const auto written = dcm::write_seg(*s.labels, grid, s.series.info, segments, dir / "seg.dcm", options);
  // Label 2 starts at slice 3, the first and last slices are empty: frames are skipped.
  EXPECT_EQ(written.frames_per_segment[0], 6u);
  EXPECT_EQ(written.frames_per_segment[1], 4u);
  EXPECT_EQ(written.frames, 6u + 4u + written.frames_per_segment[2]);
  expect_dciodvfy_clean(dir / "seg.dcm");
  // Each segment names the model that made it (dcmdump reads it back).
  const auto names = st::run_command("dcmdump -q +P SegmentAlgorithmName " + st::shell_quote(dir / "seg.dcm"));
  if (names.exit_code == 0) {
    EXPECT_NE(names.out.find("[demo-unet]"), std::string::npos) << names.out;
    EXPECT_EQ(names.out.find("[algorithm]"), std::string::npos) << names.out;
  }

  // With the source series: its grid, every voxel identical.
  dcm::ReadSegOptions ro;
  ro.reference_grid = &grid;
  ro.reference = &s.series.info;
  const auto back = dcm::read_seg(dir / "seg.dcm", ro);
  EXPECT_EQ(back.segmentation_type, "BINARY");
  EXPECT_FALSE(back.overlapping);
  EXPECT_EQ(sagitta::testing::label_differences(*back.labels, *s.labels), 0u);
  ASSERT_EQ(back.segments.size(), 3u);
  EXPECT_EQ(back.segments[1].name, "label 2");
  EXPECT_EQ(back.segments[1].category.value, "85756007");
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(back.segments[1].color[c], segments[1].color[c], 1);
  EXPECT_EQ(back.study_instance_uid, s.series.info.study_instance_uid);
  EXPECT_EQ(back.frame_of_reference_uid, s.series.info.frame_of_reference_uid);
  EXPECT_EQ(back.referenced_series_uid, s.series.info.series_instance_uid);
  EXPECT_NE(back.series_instance_uid, s.series.info.series_instance_uid);
  EXPECT_EQ(back.sop_instance_uid, written.sop_instance_uid);
  EXPECT_EQ(back.referenced_instances.size(), 8u);

  // Without it: the grid the frames span (slices 1..6), in the same physical place.
  const auto alone = dcm::read_seg(dir / "seg.dcm");
  const auto size = alone.labels->GetLargestPossibleRegion().GetSize();
  ASSERT_EQ(size[2], 6u);
  for (int k = 0; k < 6; ++k)
    for (int j = 0; j < 24; ++j)
      for (int i = 0; i < 20; ++i)
        ASSERT_EQ(alone.labels->GetPixel({{i, j, k}}), s.labels->GetPixel({{i, j, k + 1}})) << i << "," << j << "," << k;
  itk::Point<double, 3> a, b;
  alone.labels->TransformIndexToPhysicalPoint({{3, 4, 2}}, a);
  grid.TransformIndexToPhysicalPoint({{3, 4, 3}}, b);
  EXPECT_LT(a.EuclideanDistanceTo(b), 1e-3);
}

TEST(Seg, FractionalRoundTripWithin8Bits) {
  const fs::path dir = st::scratch_dir();
  auto s = synthetic(dir, 16, 16, 4);
  const auto& grid = *s.series.volumes.front();
  std::vector<dcm::Image::Pointer> p;
  for (int c = 0; c < 2; ++c) {
    auto m = dcm::Image::New();
    m->CopyInformation(&grid);
    m->SetRegions(grid.GetLargestPossibleRegion());
    m->Allocate(true);
    const std::size_t n = m->GetLargestPossibleRegion().GetNumberOfPixels();
    for (std::size_t i = 0; i < n; ++i) m->GetBufferPointer()[i] = c == 0 ? (i % 97) / 96.0f : 1.0f - (i % 97) / 96.0f;
    p.push_back(m);
  }
  std::vector<dcm::SegmentDescription> segments{{1, "liver", {221, 84, 60}, {}, {}}, {2, "spleen", {157, 108, 162}, {}, {}}};
  dcm::write_fractional_seg(p, grid, s.series.info, segments, dir / "prob.dcm");
  expect_dciodvfy_clean(dir / "prob.dcm");
  dcm::ReadSegOptions ro;
  ro.reference_grid = &grid;
  ro.reference = &s.series.info;
  const auto back = dcm::read_seg(dir / "prob.dcm", ro);
  EXPECT_EQ(back.segmentation_type, "FRACTIONAL");
  ASSERT_EQ(back.fractions.size(), 2u);
  const std::size_t n = grid.GetLargestPossibleRegion().GetNumberOfPixels();
  float worst = 0;
  for (int c = 0; c < 2; ++c)
    for (std::size_t i = 0; i < n; ++i)
      worst = std::max(worst, std::abs(back.fractions[c]->GetBufferPointer()[i] - p[c]->GetBufferPointer()[i]));
  EXPECT_LE(worst, 0.5f / 255 + 1e-6f);
}

TEST(Seg, RefusesMismatchedGeometryAndUndescribedLabels) {
  const fs::path dir = st::scratch_dir();
  auto s = synthetic(dir);
  const auto& grid = *s.series.volumes.front();
  const auto segments = describe(*s.labels);

  auto shifted = new_labels(grid);
  auto origin = grid.GetOrigin();
  origin[0] += 1.0;
  shifted->SetOrigin(origin);
  shifted->FillBuffer(1);
  EXPECT_THROW(dcm::write_seg(*shifted, grid, s.series.info, segments, dir / "a.dcm"), dcm::DicomError);

  auto small = dcm::LabelMap::New();
  small->CopyInformation(&grid);
  dcm::LabelMap::RegionType region({{0, 0, 0}}, {{20, 24, 7}});
  small->SetRegions(region);
  small->Allocate(true);
  EXPECT_THROW(dcm::write_seg(*small, grid, s.series.info, segments, dir / "b.dcm"), dcm::DicomError);

  auto undescribed = segments;
  undescribed.pop_back();  // label 3 is in the map but not described
  EXPECT_THROW(dcm::write_seg(*s.labels, grid, s.series.info, undescribed, dir / "c.dcm"), dcm::DicomError);

  auto empty = new_labels(grid);
  EXPECT_THROW(dcm::write_seg(*empty, grid, s.series.info, segments, dir / "d.dcm"), dcm::DicomError);

  EXPECT_THROW(dcm::write_seg(*s.labels, grid, s.series.info, segments, dir / "no-such-folder" / "e.dcm"), dcm::DicomError);

  // Nothing partial anywhere.
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 0u);
}

TEST(Seg, RefusesSegOfOtherImagesAndNonSegFiles) {
  const fs::path dir = st::scratch_dir();
  auto s = synthetic(dir);
  const auto& grid = *s.series.volumes.front();
  dcm::write_seg(*s.labels, grid, s.series.info, describe(*s.labels), dir / "seg.dcm");

  // The same geometry, other instances: the SEG was not made from these images.
  st::SeriesSpec spec;
  spec.rows = 24;
  spec.columns = 20;
  spec.slices = 8;
  spec.pixel_spacing = {0.8, 0.7};
  spec.slice_spacing = 2.5;
  spec.orientation = {1, 0, 0, 0, 0.8, -0.6};
  spec.first_position = {-10, 20, 30};
  spec.frame_of_reference_uid = s.series.info.frame_of_reference_uid;
  st::write_series(spec, dir / "other");
  const auto other = load_folder(dir / "other");
  dcm::ReadSegOptions ro;
  ro.reference_grid = other.volumes.front().GetPointer();
  ro.reference = &other.info;
  try {
    dcm::read_seg(dir / "seg.dcm", ro);
    ADD_FAILURE() << "a SEG of other images was accepted";
  } catch (const dcm::DicomError& e) {
    EXPECT_NE(std::string(e.what()).find("not in the reference series"), std::string::npos) << e.what();
  }
  // A CT image is not a SEG; a text file is not DICOM.
  EXPECT_THROW(dcm::read_seg(s.series.info.slices[0][0].path), dcm::DicomError);
  std::ofstream(dir / "text.dcm") << "not dicom";
  EXPECT_THROW(dcm::read_seg(dir / "text.dcm"), dcm::DicomError);
  EXPECT_THROW(dcm::read_seg(dir / "missing.dcm"), dcm::DicomError);
}

// ---- dcmqi's real data -------------------------------------------------------------------------

TEST(SegDcmqi, ReferenceLabelMapsRoundTripThroughOurSeg) {
  SAGITTA_REQUIRE_EXTERNAL(data, "seg/dcmqi/segmentations");
  const auto ct = load_folder(data / "ct-3slice");
  const auto& grid = *ct.volumes.front();
  const fs::path dir = st::scratch_dir();
  int checked = 0;
  for (const char* name : {"liver_seg.nrrd", "heart_seg.nrrd", "spine_seg.nrrd", "spine_seg_label5.nrrd",
                           "liver_spine_seg.nrrd", "liver_spine_gapped_seg.nrrd", "partial_overlaps-1.nrrd",
                           "partial_overlaps-2.nrrd", "partial_overlaps-3.nrrd"}) {
    SCOPED_TRACE(name);
    const auto labels = sagitta::testing::read_label_map(data / name);
    // dcmqi wrote these on the CT's grid; up to float noise in the header (1e-6 mm).
    labels->SetOrigin(grid.GetOrigin());
    ASSERT_EQ(labels->GetLargestPossibleRegion().GetSize(), grid.GetLargestPossibleRegion().GetSize());
    const auto segments = describe(*labels, "structure");
    ASSERT_FALSE(segments.empty());
    const fs::path out = dir / (std::string(name) + ".dcm");
    dcm::write_seg(*labels, grid, ct.info, segments, out);
    expect_dciodvfy_clean(out);
    dcm::ReadSegOptions ro;
    ro.reference_grid = &grid;
    ro.reference = &ct.info;
    ro.label_template = segments;  // label values by segment label (label 5 stays 5)
    const auto back = dcm::read_seg(out, ro);
    EXPECT_EQ(sagitta::testing::label_differences(*back.labels, *labels), 0u);
    ++checked;
  }
  EXPECT_EQ(checked, 9);
}

TEST(SegDcmqi, OurSegReferencesTheSameInstancesAsDcmqisLiverSeg) {
  SAGITTA_REQUIRE_EXTERNAL(data, "seg/dcmqi/segmentations");
  const auto ct = load_folder(data / "ct-3slice");
  const auto& grid = *ct.volumes.front();
  dcm::ReadSegOptions ro;
  ro.reference_grid = &grid;
  ro.reference = &ct.info;
  const auto theirs = dcm::read_seg(data / "liver.dcm", ro);
  const fs::path out = st::scratch_dir() / "liver.dcm";
  dcm::write_seg(*theirs.labels, grid, ct.info, {{1, "Liver", {221, 130, 101}, {"123037004", "SCT", "Anatomical Structure"},
                                                  {"10200004", "SCT", "Liver"}}},
                 out);
  const auto ours = dcm::read_seg(out, ro);
  EXPECT_EQ(ours.referenced_series_uid, theirs.referenced_series_uid);
  std::set<std::string> a(ours.referenced_instances.begin(), ours.referenced_instances.end());
  std::set<std::string> b(theirs.referenced_instances.begin(), theirs.referenced_instances.end());
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 3u);
  EXPECT_EQ(ours.study_instance_uid, theirs.study_instance_uid);
  EXPECT_EQ(ours.frame_of_reference_uid, theirs.frame_of_reference_uid);
  EXPECT_EQ(sagitta::testing::label_differences(*ours.labels, *theirs.labels), 0u);
  EXPECT_EQ(ours.segments[0].type.meaning, "Liver");
}

TEST(SegDcmqi, ReadsDcmqiSegsIntoTheirReferenceLabelMaps) {
  SAGITTA_REQUIRE_EXTERNAL(data, "seg/dcmqi/segmentations");
  const auto ct = load_folder(data / "ct-3slice");
  dcm::ReadSegOptions ro;
  ro.reference_grid = ct.volumes.front().GetPointer();
  ro.reference = &ct.info;
  const auto liver = dcm::read_seg(data / "liver.dcm", ro);
  EXPECT_EQ(sagitta::testing::label_differences(*liver.labels, *sagitta::testing::read_label_map(data / "liver_seg.nrrd")), 0u);
  EXPECT_EQ(liver.segments.at(0).name, "Liver");
  EXPECT_EQ(liver.segments.at(0).type.value, "T-62000");

  // Overlapping segments: one mask per segment. dcmqi made the SEG from three label maps that
  // hold segments {1, 4, 5}, {2} and {3} (voxel value = segment number).
  const auto overlaps = dcm::read_seg(data / "partial_overlaps.dcm", ro);
  EXPECT_TRUE(overlaps.overlapping);
  EXPECT_FALSE(overlaps.warnings.empty());
  ASSERT_EQ(overlaps.masks.size(), 5u);
  int compared = 0;
  for (int k = 1; k <= 3; ++k) {
    const auto source = sagitta::testing::read_label_map(data / fmt::format("partial_overlaps-{}.nrrd", k));
    const std::size_t n = source->GetLargestPossibleRegion().GetNumberOfPixels();
    std::set<int> values;
    for (std::size_t i = 0; i < n; ++i) values.insert(source->GetBufferPointer()[i]);
    for (int v : values) {
      if (v == 0) continue;
      ASSERT_LE(v, 5);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n; ++i)
        wrong += (source->GetBufferPointer()[i] == v) != (overlaps.masks[v - 1]->GetBufferPointer()[i] == 1);
      EXPECT_EQ(wrong, 0u) << "segment " << v;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 5);

  // The small series, without the source images: the grid comes from the SEG alone.
  for (const char* set : {"23x38x3", "24x38x3"}) {
    const auto seg = dcm::read_seg(data / set / "seg" / "label.seg");
    const auto expected = sagitta::testing::read_label_map(data / set / "nrrd" / "label.nrrd");
    EXPECT_EQ(sagitta::testing::label_differences(*seg.labels, *expected), 0u) << set;
    EXPECT_LT(seg.labels->GetOrigin().EuclideanDistanceTo(expected->GetOrigin()), 1e-3) << set;
  }

  // LABELMAP SEGs (a 2023 addition to the standard), sparse: one slice has no frame.
  const auto small = load_folder(data / "24x38x3" / "image");
  dcm::ReadSegOptions small_ro;
  small_ro.reference_grid = small.volumes.front().GetPointer();
  small_ro.reference = &small.info;
  for (const auto& [seg, nrrd] : {std::pair{"sparse-labelmap-ppv5.dcm", "sparse_labelmap_ppv5_seg.nrrd"},
                                  std::pair{"sparse-labelmap-noppv.dcm", "sparse_labelmap_noppv_seg.nrrd"}}) {
    const auto r = dcm::read_seg(data / seg, small_ro);
    EXPECT_EQ(r.segmentation_type, "LABELMAP");
    // dcmqi fills the slice that has no frame with the Pixel Padding Value (5 in the ppv5
    // file); in our label maps a slice without frames is background.
    auto expected = sagitta::testing::read_label_map(data / nrrd);
    const std::size_t n = expected->GetLargestPossibleRegion().GetNumberOfPixels();
    std::size_t padded = 0;
    for (std::size_t i = 0; i < n; ++i)
      if (expected->GetBufferPointer()[i] == 5) expected->GetBufferPointer()[i] = 0, ++padded;
    EXPECT_EQ(padded, std::string(seg).find("ppv5") != std::string::npos ? 24u * 38u : 0u) << seg;
    EXPECT_EQ(sagitta::testing::label_differences(*r.labels, *expected), 0u) << seg;
  }
}

TEST(SegDcmqi, PydicomReadsOurSegAndItsPixelData) {
  SAGITTA_REQUIRE_EXTERNAL(data, "seg/dcmqi/segmentations");
  std::string python;
  for (const char* candidate : {"/usr/bin/python3", "python3"})
    if (st::run_command(fmt::format("{} -c 'import pydicom, numpy' 2>/dev/null", candidate)).exit_code == 0) {
      python = candidate;
      break;
    }
  if (python.empty()) GTEST_SKIP() << "no python3 with pydicom and numpy (Debian package python3-pydicom)";
  const auto ct = load_folder(data / "ct-3slice");
  const auto labels = sagitta::testing::read_label_map(data / "liver_spine_seg.nrrd");
  labels->SetOrigin(ct.volumes.front()->GetOrigin());
  const fs::path out = st::scratch_dir() / "seg.dcm";
  dcm::write_seg(*labels, *ct.volumes.front(), ct.info, describe(*labels), out);
  std::size_t voxels[3] = {0, 0, 0};
  const std::size_t n = labels->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i)
    if (labels->GetBufferPointer()[i] < 3) ++voxels[labels->GetBufferPointer()[i]];
  const auto r = st::run_command(fmt::format("{} '{}' '{}'", python,
                                             (st::source_dir() / "tests" / "dicom" / "read_seg_pydicom.py").string(),
                                             out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The script prints: frames, rows, columns, then "segment voxels" per segment.
  EXPECT_NE(r.out.find("rows 512 columns 512"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format("segment 1 voxels {}", voxels[1])), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(fmt::format("segment 2 voxels {}", voxels[2])), std::string::npos) << r.out;
}

}  // namespace

// The real JPEG 2000 lossless CT (TotalSegmentator's example) through the whole loader: the
// volume must equal the one loaded from the uncompressed copy that GDCM (`gdcmconv --raw`)
// makes, and its grid must be the grid of TotalSegmentator's label map of the same series.
#include <gtest/gtest.h>
#include <itkImageFileReader.h>

#include <cmath>
#include <fmt/format.h>

#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"
#include "support/dicom_fixups.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;

dcm::LoadedSeries load_folder(const fs::path& dir) {
  const auto scan = dcm::scan({dir});
  return dcm::load(dcm::select_stack(scan, ""));
}

TEST(J2kSeries, MatchesGdcmDecompressedCopyAndTotalSegmentatorGrid) {
  SAGITTA_REQUIRE_EXTERNAL(ct, "ct/totalsegmentator/example_ct_dicom");
  SAGITTA_REQUIRE_EXTERNAL(labels, "ct/totalsegmentator/example_seg_dicom.nii.gz");
  if (sagitta::testing::run_command("command -v gdcmconv").exit_code != 0) GTEST_SKIP() << "gdcmconv not installed";

  const fs::path raw = sagitta::testing::scratch_dir();
  std::size_t converted = 0;
  for (const auto& e : fs::directory_iterator(ct)) {
    // GDCM needs the SOP UIDs that this anonymised series keeps only in its meta header.
    const fs::path fixed = sagitta::testing::copy_with_sop_uids(e.path(), raw / (e.path().filename().string() + ".j2k"));
    ASSERT_FALSE(fixed.empty()) << e.path();
    const auto r = sagitta::testing::run_command(
        fmt::format("gdcmconv --raw '{}' '{}'", fixed.string(), (raw / e.path().filename()).string()));
    fs::remove(fixed);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    ++converted;
  }
  ASSERT_EQ(converted, 20u);

  const auto j2k = load_folder(ct);
  const auto plain = load_folder(raw);
  EXPECT_EQ(j2k.info.transfer_syntax_uid, "1.2.840.10008.1.2.4.90");
  EXPECT_NE(plain.info.transfer_syntax_uid, j2k.info.transfer_syntax_uid);
  ASSERT_EQ(j2k.volumes.size(), 1u);
  const auto& a = *j2k.volumes.front();
  const auto& b = *plain.volumes.front();
  ASSERT_EQ(a.GetLargestPossibleRegion(), b.GetLargestPossibleRegion());
  EXPECT_EQ(a.GetLargestPossibleRegion().GetSize()[0], 512u);
  EXPECT_EQ(a.GetLargestPossibleRegion().GetSize()[2], 20u);
  const std::size_t n = a.GetLargestPossibleRegion().GetNumberOfPixels();
  std::size_t different = 0;
  float lo = 1e9f, hi = -1e9f;
  for (std::size_t i = 0; i < n; ++i) {
    different += a.GetBufferPointer()[i] != b.GetBufferPointer()[i];
    lo = std::min(lo, a.GetBufferPointer()[i]);
    hi = std::max(hi, a.GetBufferPointer()[i]);
  }
  EXPECT_EQ(different, 0u) << "of " << n;
  EXPECT_LT(lo, -900.f) << "air in Hounsfield units";
  EXPECT_GT(hi, 500.f) << "bone in Hounsfield units";

  // Geometry against TotalSegmentator's label map (written by nibabel from dcm2niix's grid).
  auto reader = itk::ImageFileReader<dcm::Image>::New();
  reader->SetFileName(labels.string());
  reader->Update();
  const auto& seg = *reader->GetOutput();
  // Same physical point for every corner voxel; axes may be ordered differently.
  const auto size = a.GetLargestPossibleRegion().GetSize();
  for (int corner = 0; corner < 8; ++corner) {
    dcm::Image::IndexType idx;
    for (int d = 0; d < 3; ++d) idx[d] = (corner >> d & 1) ? long(size[d]) - 1 : 0;
    dcm::Image::PointType p;
    a.TransformIndexToPhysicalPoint(idx, p);
    itk::ContinuousIndex<double, 3> ci;
    seg.TransformPhysicalPointToContinuousIndex(p, ci);
    for (int d = 0; d < 3; ++d) {
      EXPECT_NEAR(ci[d], std::round(ci[d]), 1e-4 / seg.GetSpacing()[d]) << "corner " << corner << " axis " << d;
      EXPECT_GE(std::round(ci[d]), 0);
      EXPECT_LT(std::round(ci[d]), double(seg.GetLargestPossibleRegion().GetSize()[d]));
    }
  }
  EXPECT_EQ(seg.GetLargestPossibleRegion().GetNumberOfPixels(), n);
}

}  // namespace

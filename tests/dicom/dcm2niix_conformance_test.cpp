// Conformance with a real peer: every series of dcm_qa_nih (real GE and Siemens MR) converted by
// `sagitta convert` must equal dcm2niix's reference NIfTI voxel for voxel, with the same physical
// placement of every voxel to 1e-4 mm. The two tools order axes differently (dcm2niix flips rows
// into a NIfTI-style orientation), so voxels are matched through each file's own index-to-LPS
// transform, read by ITK's NIfTI and NRRD readers.
#include <gtest/gtest.h>
#include <itkImage.h>
#include <itkImageFileReader.h>

#include <cmath>
#include <fmt/format.h>

#include "support/read_4d.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using Image4 = itk::Image<float, 4>;

Image4::Pointer read4(const fs::path& path) { return sagitta::testing::read_4d(path); }

// index -> LPS (mm) of the first three axes.
struct Affine {
  double m[3][3];
  double t[3];
};

Affine affine_of(const Image4& image) {
  Affine a{};
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c) a.m[r][c] = image.GetDirection()[r][c] * image.GetSpacing()[c];
    a.t[r] = image.GetOrigin()[r];
  }
  return a;
}

Affine inverse(const Affine& a) {
  const auto& m = a.m;
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
                     m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  Affine inv{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      const int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
      inv.m[r][c] = (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / det;
    }
  for (int r = 0; r < 3; ++r) inv.t[r] = -(inv.m[r][0] * a.t[0] + inv.m[r][1] * a.t[1] + inv.m[r][2] * a.t[2]);
  return inv;
}

struct Case {
  const char* input;      // relative to dicom/dcm_qa_nih/In
  const char* reference;  // relative to dicom/dcm_qa_nih/Ref
};

class Dcm2niixConformance : public ::testing::TestWithParam<std::tuple<Case, const char*>> {};

TEST_P(Dcm2niixConformance, VoxelsAndGeometryMatchReference) {
  SAGITTA_REQUIRE_EXTERNAL(qa, "dicom/dcm_qa_nih");
  std::error_code ec;
  if (!fs::is_regular_file(sagitta::testing::sagitta_executable(), ec))
    GTEST_SKIP() << "the sagitta executable is not built (the DICOM-only sanitizer build); conformance runs the command";
  const auto [c, extension] = GetParam();
  const fs::path out = sagitta::testing::scratch_dir() / (std::string("out") + extension);
  const auto run = sagitta::testing::run_command(
      fmt::format("'{}' convert '{}' -o '{}'", sagitta::testing::sagitta_executable().string(),
                  (qa / "In" / c.input).string(), out.string()));
  ASSERT_EQ(run.exit_code, 0) << run.err;

  const auto ref = read4(qa / "Ref" / c.reference);
  const auto ours = read4(out);
  const auto ref_size = ref->GetLargestPossibleRegion().GetSize();
  const auto our_size = ours->GetLargestPossibleRegion().GetSize();
  ASSERT_EQ(ref_size[3], our_size[3]) << "number of volumes";

  // Our index of each reference index: M = ours^-1 * ref must be a signed permutation with an
  // integer translation, i.e. both grids are the same set of points in patient space.
  const Affine to_ours = [&] {
    const Affine a = affine_of(*ref), b = inverse(affine_of(*ours));
    Affine m{};
    for (int r = 0; r < 3; ++r) {
      for (int col = 0; col < 3; ++col)
        m.m[r][col] = b.m[r][0] * a.m[0][col] + b.m[r][1] * a.m[1][col] + b.m[r][2] * a.m[2][col];
      m.t[r] = b.m[r][0] * a.t[0] + b.m[r][1] * a.t[1] + b.m[r][2] * a.t[2] + b.t[r];
    }
    return m;
  }();
  for (int r = 0; r < 3; ++r) {
    int nonzero = 0;
    for (int col = 0; col < 3; ++col) {
      const double v = to_ours.m[r][col];
      EXPECT_NEAR(std::abs(v), std::round(std::abs(v)), 1e-5) << "axes are not a permutation";
      nonzero += std::abs(v) > 0.5;
    }
    EXPECT_EQ(nonzero, 1);
    // Translation in voxels, converted to mm with our spacing along that axis.
    EXPECT_NEAR(to_ours.t[r], std::round(to_ours.t[r]), 1e-4 / ours->GetSpacing()[r])
        << "origin differs by more than 1e-4 mm along axis " << r;
  }
  for (int axis = 0; axis < 3; ++axis) {
    int ref_axis = 0;
    for (int col = 0; col < 3; ++col)
      if (std::abs(to_ours.m[axis][col]) > 0.5) ref_axis = col;
    EXPECT_NEAR(ours->GetSpacing()[axis], ref->GetSpacing()[ref_axis], 1e-4);
    EXPECT_EQ(our_size[axis], ref_size[ref_axis]);
  }

  std::size_t compared = 0, different = 0;
  Image4::IndexType ri, oi;
  for (ri[3] = 0; ri[3] < static_cast<long>(ref_size[3]); ++ri[3])
    for (ri[2] = 0; ri[2] < static_cast<long>(ref_size[2]); ++ri[2])
      for (ri[1] = 0; ri[1] < static_cast<long>(ref_size[1]); ++ri[1])
        for (ri[0] = 0; ri[0] < static_cast<long>(ref_size[0]); ++ri[0]) {
          for (int r = 0; r < 3; ++r)
            oi[r] = std::lround(to_ours.m[r][0] * ri[0] + to_ours.m[r][1] * ri[1] + to_ours.m[r][2] * ri[2] + to_ours.t[r]);
          oi[3] = ri[3];
          ASSERT_TRUE(ours->GetLargestPossibleRegion().IsInside(oi));
          ++compared;
          if (ref->GetPixel(ri) != ours->GetPixel(oi)) {
            if (different++ < 5)
              ADD_FAILURE() << "voxel " << ri << ": dcm2niix " << ref->GetPixel(ri) << ", sagitta " << ours->GetPixel(oi);
          }
        }
  EXPECT_EQ(different, 0u) << "of " << compared << " voxels";
  EXPECT_GT(compared, 0u);
}

const Case kCases[] = {
    {"20180918GE/mr_0004", "DCM2NIIX_regression_test_4.nii"},
    {"20180918GE/mr_0005", "DCM2NIIX_regression_test_5.nii"},
    {"20180918GE/mr_0006", "DCM2NIIX_regression_test_6.nii"},
    {"20180918GE/mr_0007", "DCM2NIIX_regression_test_7.nii"},
    {"20180918Si/mr_0003", "EPI_PE=AP_3.nii"},
    {"20180918Si/mr_0004", "EPI_PE=PA_4.nii"},
    {"20180918Si/mr_0005", "EPI_PE=RL_5.nii"},
    {"20180918Si/mr_0006", "EPI_PE=LR_6.nii"},
};

std::string case_name(const ::testing::TestParamInfo<std::tuple<Case, const char*>>& info) {
  std::string name = std::string(std::get<0>(info.param).input) + std::get<1>(info.param);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

INSTANTIATE_TEST_SUITE_P(DcmQaNih, Dcm2niixConformance,
                         ::testing::Combine(::testing::ValuesIn(kCases), ::testing::Values(".nii.gz", ".nrrd")),
                         case_name);

}  // namespace

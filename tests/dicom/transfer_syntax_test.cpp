// Every transfer syntax through the whole loader, against real encoders and real files:
// a real CT slice (pydicom's CT_small, from Debian's python3-pydicom) is re-encoded by GDCM
// (gdcmconv) and DCMTK's own command-line tools, then loaded by Sagitta; lossless encodings must
// give back exactly the voxels of the uncompressed original, lossy JPEG exactly what GDCM decodes.
// pydicom's MR_small variants (RLE, JPEG-LS, JPEG 2000, big endian, implicit...) must all equal
// MR_small. Other real oddities: RT Dose frames placed by GridFrameOffsetVector, DICOMDIR trees,
// a truncated file.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"
#include "support/dicom_fixups.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
using sagitta::testing::run_command;

const fs::path kPydicomFiles = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

#define REQUIRE_PYDICOM_FILES()                                                              \
  if (!fs::exists(kPydicomFiles / "CT_small.dcm"))                                           \
  GTEST_SKIP() << "pydicom's test files not found at " << kPydicomFiles                       \
               << " (Debian package python3-pydicom)"

dcm::LoadedSeries load_file(const fs::path& file) {
  const auto scan = dcm::scan({file});
  return dcm::load(dcm::select_stack(scan, ""));
}

// Voxel-by-voxel comparison; returns the largest absolute difference (geometry must be equal).
double compare(const dcm::LoadedSeries& a, const dcm::LoadedSeries& b) {
  EXPECT_EQ(a.volumes.size(), b.volumes.size());
  const auto& x = *a.volumes.front();
  const auto& y = *b.volumes.front();
  EXPECT_EQ(x.GetLargestPossibleRegion(), y.GetLargestPossibleRegion());
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(x.GetOrigin()[i], y.GetOrigin()[i], 1e-4);
    EXPECT_NEAR(x.GetSpacing()[i], y.GetSpacing()[i], 1e-6);
  }
  if (x.GetLargestPossibleRegion() != y.GetLargestPossibleRegion()) return 1e30;
  double worst = 0;
  for (std::size_t i = 0; i < x.GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    worst = std::max(worst, std::abs(double(x.GetBufferPointer()[i]) - y.GetBufferPointer()[i]));
  return worst;
}

struct Encoder {
  const char* name;
  const char* command;  // {in} {out}
  const char* transfer_syntax;
  bool lossless;
};

class Reencoded : public ::testing::TestWithParam<Encoder> {};

TEST_P(Reencoded, DecodesLikeThePeer) {
  REQUIRE_PYDICOM_FILES();
  const Encoder& e = GetParam();
  const std::string tool = std::string(e.command).substr(0, std::string(e.command).find(' '));
  if (run_command("command -v " + tool).exit_code != 0) GTEST_SKIP() << tool << " not installed";
  const fs::path dir = sagitta::testing::scratch_dir();
  const fs::path original = kPydicomFiles / "CT_small.dcm";
  const fs::path encoded = dir / "encoded.dcm";
  auto r = run_command(fmt::format(fmt::runtime(e.command), fmt::arg("in", "'" + original.string() + "'"),
                                   fmt::arg("out", "'" + encoded.string() + "'")));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ours = load_file(encoded);
  EXPECT_EQ(ours.info.transfer_syntax_uid, e.transfer_syntax);
  if (e.lossless) {
    EXPECT_EQ(compare(ours, load_file(original)), 0.0);
  } else {
    // Lossy: the reference is what GDCM decodes from the same file.
    const fs::path raw = dir / "gdcm_raw.dcm";
    r = run_command(fmt::format("gdcmconv --raw '{}' '{}'", encoded.string(), raw.string()));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto reference = load_file(raw);
    EXPECT_LE(compare(ours, reference), 1.0) << "IJG-based decoders should agree to rounding";
    EXPECT_GT(compare(ours, load_file(original)), 0.0) << "a lossy encoding that changed nothing?";
  }
}

const Encoder kEncoders[] = {
    {"gdcm_jpeg_lossless", "gdcmconv --jpeg {in} {out}", "1.2.840.10008.1.2.4.70", true},
    {"gdcm_jpegls_lossless", "gdcmconv --jpegls {in} {out}", "1.2.840.10008.1.2.4.80", true},
    {"gdcm_j2k_lossless", "gdcmconv --j2k {in} {out}", "1.2.840.10008.1.2.4.90", true},
    {"gdcm_rle", "gdcmconv --rle {in} {out}", "1.2.840.10008.1.2.5", true},
    {"dcmtk_jpeg_lossless_sv1", "dcmcjpeg +e1 {in} {out}", "1.2.840.10008.1.2.4.70", true},
    {"dcmtk_jpeg_lossless_p14", "dcmcjpeg +el {in} {out}", "1.2.840.10008.1.2.4.57", true},
    {"dcmtk_jpeg_extended_lossy", "dcmcjpeg +ee {in} {out}", "1.2.840.10008.1.2.4.51", false},
    {"dcmtk_jpegls_lossless", "dcmcjpls +el {in} {out}", "1.2.840.10008.1.2.4.80", true},
    {"gdcm_jpegls_near_lossless", "gdcmconv --jpegls --lossy -e 2 {in} {out}", "1.2.840.10008.1.2.4.81", false},
    {"gdcm_j2k_lossy", "gdcmconv --j2k --lossy -q 30 {in} {out}", "1.2.840.10008.1.2.4.91", false},
    {"dcmtk_rle", "dcmcrle {in} {out}", "1.2.840.10008.1.2.5", true},
    {"dcmtk_big_endian", "dcmconv +tb {in} {out}", "1.2.840.10008.1.2.2", true},
    {"dcmtk_implicit", "dcmconv +ti {in} {out}", "1.2.840.10008.1.2", true},
    {"dcmtk_deflate", "dcmconv +td {in} {out}", "1.2.840.10008.1.2.1.99", true},
};

INSTANTIATE_TEST_SUITE_P(CtSmall, Reencoded, ::testing::ValuesIn(kEncoders),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(PydicomSamples, MrSmallVariantsEqualTheOriginal) {
  REQUIRE_PYDICOM_FILES();
  const auto reference = load_file(kPydicomFiles / "MR_small.dcm");
  for (const char* name : {"MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm", "MR_small_implicit.dcm",
                           "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(compare(load_file(kPydicomFiles / name), reference), 0.0);
  }
}

TEST(PydicomSamples, RtDoseFramesPlacedByGridFrameOffsetVector) {
  REQUIRE_PYDICOM_FILES();
  const auto dose = load_file(kPydicomFiles / "rtdose.dcm");
  const auto& v = *dose.volumes.front();
  EXPECT_EQ(v.GetLargestPossibleRegion().GetSize()[2], 15u);
  EXPECT_NEAR(v.GetSpacing()[2], 5.0, 1e-9);  // offsets 0, 5, 10, ... mm
  EXPECT_NEAR(v.GetOrigin()[2], -761.87, 1e-6);
  // Dose in Gy: stored integers times DoseGridScaling.
  float max_dose = 0;
  for (std::size_t i = 0; i < v.GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    max_dose = std::max(max_dose, v.GetBufferPointer()[i]);
  EXPECT_GT(max_dose, 0.f);
  EXPECT_LT(max_dose, 100.f) << "DoseGridScaling not applied?";
}

TEST(PydicomSamples, DicomdirIndexesAreSkippedAndImagesFound) {
  REQUIRE_PYDICOM_FILES();
  const auto scan = dcm::scan({kPydicomFiles / "dicomdirtests"});
  std::size_t dicomdirs = 0;
  for (const auto& d : scan.decisions) dicomdirs += d.what.find("DICOMDIR index") != std::string::npos;
  EXPECT_GE(dicomdirs, 6u);
  EXPECT_GE(scan.stacks.size(), 3u);
  for (const auto& s : scan.stacks) EXPECT_FALSE(s.frames.empty());
}

TEST(PydicomSamples, TruncatedFileIsRefusedWithItsName) {
  REQUIRE_PYDICOM_FILES();
  try {
    load_file(kPydicomFiles / "MR_truncated.dcm");
    FAIL() << "a truncated file loaded";
  } catch (const dcm::DicomError& e) {
    EXPECT_NE(std::string(e.what()).find("MR_truncated.dcm"), std::string::npos) << e.what();
  }
}

}  // namespace

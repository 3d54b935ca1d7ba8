// Parametric Maps (float heatmaps) and RGB Secondary Captures: written on real and synthetic
// series, checked by dciodvfy, and read back value for value with plain dcmdata.
#include <gtest/gtest.h>
#include <itkImageFileReader.h>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <fmt/format.h>

#include <cmath>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/parametric_map.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/secondary_capture.h"
#include "support/synthetic_dicom.h"
#include "support/dicom_checks.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace st = sagitta::testing;

dcm::LoadedSeries load_folder(const fs::path& dir) { return dcm::load(dcm::select_stack(dcm::scan({dir}), "")); }

void expect_dciodvfy_clean(const fs::path& file) {
  const st::IodCheck check = st::dciodvfy(file);
  if (!check.installed) {
    std::cout << "[ NOTE ] dciodvfy not installed (Debian package dicom3tools); IOD check skipped\n";
    return;
  }
  EXPECT_EQ(check.errors, 0u) << file << ":\n" << check.report;
}

// Reads the float frames of a Parametric Map back in frame order.
std::vector<float> read_float_frames(const fs::path& file, long& frames) {
  DcmFileFormat f;
  EXPECT_TRUE(f.loadFile(file.c_str()).good());
  DcmDataset& d = *f.getDataset();
  frames = 0;
  d.findAndGetLongInt(DCM_NumberOfFrames, frames);
  const Float32* values = nullptr;
  unsigned long count = 0;
  EXPECT_TRUE(d.findAndGetFloat32Array(DCM_FloatPixelData, values, &count).good());
  return values ? std::vector<float>(values, values + count) : std::vector<float>{};
}

TEST(ParametricMap, HeatmapOnSyntheticSeriesRoundTripsAndValidates) {
  const fs::path dir = st::scratch_dir();
  st::SeriesSpec spec;
  spec.rows = 20;
  spec.columns = 24;
  spec.slices = 6;
  spec.orientation = {1, 0, 0, 0, 0.8, -0.6};
  st::write_series(spec, dir / "ct");
  const auto ct = load_folder(dir / "ct");
  const auto& grid = *ct.volumes.front();
  auto map = dcm::Image::New();
  map->CopyInformation(&grid);
  map->SetRegions(grid.GetLargestPossibleRegion());
  map->Allocate();
  const std::size_t n = map->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) map->GetBufferPointer()[i] = static_cast<float>(std::sin(0.01 * i) * 0.5 + 0.5);
  const auto r = dcm::write_parametric_map(*map, grid, ct.info, dir / "heatmap.dcm");
  EXPECT_EQ(r.frames, 6u);
  expect_dciodvfy_clean(dir / "heatmap.dcm");
  long frames = 0;
  const auto values = read_float_frames(dir / "heatmap.dcm", frames);
  EXPECT_EQ(frames, 6);
  ASSERT_EQ(values.size(), n);
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(values[i], map->GetBufferPointer()[i]) << i;

  // Not on the source grid: refused, nothing written.
  auto shifted = dcm::Image::New();
  shifted->CopyInformation(map);
  auto origin = shifted->GetOrigin();
  origin[2] += 0.5;
  shifted->SetOrigin(origin);
  shifted->SetRegions(map->GetLargestPossibleRegion());
  shifted->Allocate(true);
  EXPECT_THROW(dcm::write_parametric_map(*shifted, grid, ct.info, dir / "bad.dcm"), dcm::DicomError);
  EXPECT_FALSE(fs::exists(dir / "bad.dcm"));
}

TEST(ParametricMap, DcmqisFloatMapOnTheRealAdcSeries) {
  SAGITTA_REQUIRE_EXTERNAL(data, "seg/dcmqi/paramaps");
  const auto adc = load_folder(data / "701-ADCb500");
  const auto& grid = *adc.volumes.front();
  auto reader = itk::ImageFileReader<dcm::Image>::New();
  reader->SetFileName((data / "pm-example-float.nrrd").string());
  reader->Update();
  dcm::Image::Pointer map = reader->GetOutput();
  if (map->GetLargestPossibleRegion() != grid.GetLargestPossibleRegion())
    GTEST_SKIP() << "pm-example-float.nrrd is not on the 701-ADCb500 grid";
  // dcmqi wrote the NRRD on the series' grid; take its exact header numbers from the series.
  map->CopyInformation(&grid);
  dcm::ParametricMapOptions options;
  options.quantity = {"113041", "DCM", "Apparent Diffusion Coefficient"};
  options.units = {"um2/s", "UCUM", "um2/s"};
  options.label = "ADC";
  const fs::path out = st::scratch_dir() / "adc.dcm";
  dcm::write_parametric_map(*map, grid, adc.info, out, options);
  expect_dciodvfy_clean(out);
  long frames = 0;
  const auto values = read_float_frames(out, frames);
  EXPECT_EQ(static_cast<std::size_t>(frames), grid.GetLargestPossibleRegion().GetSize()[2]);
  const std::size_t n = map->GetLargestPossibleRegion().GetNumberOfPixels();
  ASSERT_EQ(values.size(), n);
  std::size_t different = 0;
  for (std::size_t i = 0; i < n; ++i) different += values[i] != map->GetBufferPointer()[i];
  EXPECT_EQ(different, 0u);
}

TEST(SecondaryCapture, RgbPictureValidatesAndKeepsItsPixels) {
  const fs::path dir = st::scratch_dir();
  st::SeriesSpec spec;
  spec.slices = 3;
  st::write_series(spec, dir / "ct");
  const auto ct = load_folder(dir / "ct");
  dcm::RgbPicture picture;
  picture.width = 64;
  picture.height = 48;
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) picture.rgb.push_back(static_cast<std::uint8_t>(c == 0 ? x * 4 : c == 1 ? y * 5 : 128));
  dcm::SecondaryCaptureOptions options;
  options.source_slice = 1;
  options.comment = "overlay on slice 2";
  const auto r = dcm::write_secondary_capture(picture, ct.info, dir / "sc.dcm", options);
  expect_dciodvfy_clean(dir / "sc.dcm");
  DcmFileFormat f;
  ASSERT_TRUE(f.loadFile((dir / "sc.dcm").c_str()).good());
  DcmDataset& d = *f.getDataset();
  const Uint8* pixels = nullptr;
  unsigned long count = 0;
  ASSERT_TRUE(d.findAndGetUint8Array(DCM_PixelData, pixels, &count).good());
  ASSERT_EQ(count, picture.rgb.size());
  EXPECT_TRUE(std::equal(picture.rgb.begin(), picture.rgb.end(), pixels));
  OFString study, sop;
  d.findAndGetOFString(DCM_StudyInstanceUID, study);
  d.findAndGetOFString(DCM_SOPInstanceUID, sop);
  EXPECT_EQ(study.c_str(), ct.info.study_instance_uid);
  EXPECT_EQ(sop.c_str(), r.sop_instance_uid);

  dcm::RgbPicture broken = picture;
  broken.rgb.pop_back();
  EXPECT_THROW(dcm::write_secondary_capture(broken, ct.info, dir / "broken.dcm"), dcm::DicomError);
  EXPECT_FALSE(fs::exists(dir / "broken.dcm"));
}

}  // namespace

// Training cases: images (a DICOM folder or a volume file) and label maps on the model grid.
#include "train_data.h"

#include "sagitta/segmentation/preprocess.h"

#include <fmt/format.h>
#include <itkIdentityTransform.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_map>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/open_volume.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation::detail {
namespace fs = std::filesystem;

Image::Pointer read_image(const fs::path& path, const std::string& series) {
  dicom::OpenOptions options;
  options.series = series;
  options.purpose = "train on";
  return dicom::open_volume(path, options).volume;
}

namespace {

Image::Pointer resample(const Image& image, const itk::ImageBase<3>& grid, bool nearest, float outside) {
  using Filter = itk::ResampleImageFilter<Image, Image, double>;
  auto filter = Filter::New();
  filter->SetInput(&image);
  filter->SetTransform(itk::IdentityTransform<double, 3>::New());
  if (nearest)
    filter->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<Image, double>::New());
  else
    filter->SetInterpolator(itk::LinearInterpolateImageFunction<Image, double>::New());
  filter->SetOutputParametersFromImage(&grid);
  filter->SetDefaultPixelValue(outside);
  filter->Update();
  Image::Pointer out = filter->GetOutput();
  out->DisconnectPipeline();
  return out;
}

}  // namespace

Image::Pointer resample_like(const Image& image, const itk::ImageBase<3>& reference, bool nearest, float outside) {
  return resample(image, reference, nearest, outside);
}

Image::Pointer resample_canonical(const Image& image, const std::array<double, 3>& spacing, bool nearest,
                                  float outside) {
  return resample(image, *axis_aligned_grid(image, spacing), nearest, outside);
}

std::vector<std::uint8_t> remap_labels(const Image& labels, const std::vector<LabelSpec>& specs) {
  std::unordered_map<int, int> lut;
  for (const auto& s : specs)
    for (int v : s.sources) lut[v] = s.value;
  const float* p = labels.GetBufferPointer();
  const std::size_t n = labels.GetBufferedRegion().GetNumberOfPixels();
  std::vector<std::uint8_t> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int v = int(std::lround(p[i]));
    int mapped = v;
    if (!specs.empty()) {
      const auto it = lut.find(v);
      mapped = it == lut.end() ? 0 : it->second;
    }
    if (mapped < 0 || mapped > 255)
      throw SegmentationError(fmt::format("label value {} is outside 0..255; map it with --labels", v));
    out[i] = std::uint8_t(mapped);
  }
  return out;
}

CaseData load_case(const TrainingPair& pair, const std::array<double, 3>& spacing,
                   const std::vector<LabelSpec>& specs) {
  const auto image = read_image(pair.image, pair.series);
  Image::Pointer labels;
  try {
    labels = sagitta::read_volume(pair.label);
  } catch (const dicom::DicomError& e) {
    throw SegmentationError(e.what());
  }
  CaseData c;
  c.name = pair.image.filename().string();
  for (unsigned a = 0; a < 3; ++a) {
    c.source_spacing[a] = image->GetSpacing()[a];
    c.source_extent[a] = image->GetSpacing()[a] * double(image->GetLargestPossibleRegion().GetSize()[a]);
  }
  // Air outside the scanned extent: -1024 HU is right for CT, and for other modalities the
  // normalisation's clip/shift handles it.
  auto grid_image = resample_canonical(*image, spacing, false, -1024.0f);
  auto grid_labels = resample_like(*labels, *grid_image, true, 0.0f);
  const auto size = grid_image->GetLargestPossibleRegion().GetSize();
  for (int a = 0; a < 3; ++a) c.size[a] = int(size[a]);
  const float* p = grid_image->GetBufferPointer();
  c.image.assign(p, p + grid_image->GetBufferedRegion().GetNumberOfPixels());
  c.labels = remap_labels(*grid_labels, specs);
  std::size_t foreground = 0;
  for (auto v : c.labels) foreground += v != 0;
  if (foreground == 0)
    throw SegmentationError(fmt::format("{}: the label map {} has no voxel of the trained labels inside the image",
                                        pair.image.string(), pair.label.string()));
  c.grid = grid_image;
  return c;
}

}  // namespace sagitta::segmentation::detail

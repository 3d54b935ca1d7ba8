// Reading outputs back in tests (see read_4d.h).
#include "support/read_4d.h"

#include <itkImageFileReader.h>
#include <itkVectorImage.h>

namespace sagitta::testing {

itk::Image<float, 4>::Pointer read_4d(const std::filesystem::path& path) {
  using Image4 = itk::Image<float, 4>;
  if (path.extension() != ".nrrd") {
    auto reader = itk::ImageFileReader<Image4>::New();
    reader->SetFileName(path.string());
    reader->Update();
    return reader->GetOutput();
  }
  using Sequence = itk::VectorImage<float, 3>;
  auto reader = itk::ImageFileReader<Sequence>::New();
  reader->SetFileName(path.string());
  reader->Update();
  const Sequence* in = reader->GetOutput();
  const auto size3 = in->GetLargestPossibleRegion().GetSize();
  const unsigned components = in->GetNumberOfComponentsPerPixel();
  auto out = Image4::New();
  Image4::SizeType size;
  Image4::SpacingType spacing;
  Image4::PointType origin;
  Image4::DirectionType direction;
  direction.SetIdentity();
  for (int i = 0; i < 3; ++i) {
    size[i] = size3[i];
    spacing[i] = in->GetSpacing()[i];
    origin[i] = in->GetOrigin()[i];
    for (int j = 0; j < 3; ++j) direction[i][j] = in->GetDirection()[i][j];
  }
  size[3] = components;
  spacing[3] = 1;
  origin[3] = 0;
  out->SetRegions(size);
  out->SetSpacing(spacing);
  out->SetOrigin(origin);
  out->SetDirection(direction);
  out->Allocate();
  const std::size_t voxels = in->GetLargestPossibleRegion().GetNumberOfPixels();
  const float* src = in->GetBufferPointer();
  float* dst = out->GetBufferPointer();
  for (std::size_t i = 0; i < voxels; ++i)
    for (unsigned t = 0; t < components; ++t) dst[t * voxels + i] = src[i * components + t];
  return out;
}

LabelImage::Pointer read_label_map(const std::filesystem::path& path) {
  auto reader = itk::ImageFileReader<LabelImage>::New();
  reader->SetFileName(path.string());
  reader->Update();
  return reader->GetOutput();
}

std::size_t label_differences(const LabelImage& a, const LabelImage& b) {
  if (a.GetLargestPossibleRegion().GetSize() != b.GetLargestPossibleRegion().GetSize()) return static_cast<std::size_t>(-1);
  const std::size_t n = a.GetLargestPossibleRegion().GetNumberOfPixels();
  std::size_t d = 0;
  for (std::size_t i = 0; i < n; ++i) d += a.GetBufferPointer()[i] != b.GetBufferPointer()[i];
  return d;
}

}  // namespace sagitta::testing

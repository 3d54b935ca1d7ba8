#include "phantom.h"

#include <vtkPNGReader.h>

#include <cmath>
#include <cstdlib>

#include "sagitta/viewer/offscreen_render.h"
#include "support/test_paths.h"

namespace sagitta::viewer::testing {

Grid Grid::centred(const Vec3& centre) const {
  Grid g = *this;
  for (int r = 0; r < 3; ++r) {
    double offset = 0;
    for (int c = 0; c < 3; ++c) offset += direction[std::size_t(3 * r + c)] * spacing[std::size_t(c)] * (size[std::size_t(c)] - 1) / 2.0;
    g.origin[std::size_t(r)] = centre[std::size_t(r)] - offset;
  }
  return g;
}

std::array<double, 9> oblique_direction(double degrees_z, double degrees_x) {
  const double a = degrees_z * M_PI / 180, b = degrees_x * M_PI / 180;
  const double rz[9] = {std::cos(a), -std::sin(a), 0, std::sin(a), std::cos(a), 0, 0, 0, 1};
  const double rx[9] = {1, 0, 0, 0, std::cos(b), -std::sin(b), 0, std::sin(b), std::cos(b)};
  std::array<double, 9> d{};
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      for (int k = 0; k < 3; ++k) d[std::size_t(3 * r + c)] += rx[3 * r + k] * rz[3 * k + c];
  return d;
}

namespace {

template <typename TImage>
typename TImage::Pointer allocate(const Grid& g) {
  auto image = TImage::New();
  typename TImage::RegionType region;
  region.SetSize({{g.size[0], g.size[1], g.size[2]}});
  image->SetRegions(region);
  typename TImage::SpacingType spacing;
  typename TImage::PointType origin;
  typename TImage::DirectionType direction;
  for (unsigned r = 0; r < 3; ++r) {
    spacing[r] = g.spacing[r];
    origin[r] = g.origin[r];
    for (unsigned c = 0; c < 3; ++c) direction(r, c) = g.direction[3 * r + c];
  }
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  image->Allocate();
  return image;
}

bool inside(const Blob& b, const itk::Point<double, 3>& p) {
  double s = 0;
  for (unsigned d = 0; d < 3; ++d) {
    const double t = (p[d] - b.centre[d]) / b.semi_axes[d];
    s += t * t;
  }
  return s <= 1.0;
}

template <typename TImage, typename F>
void paint(TImage* image, F value_at) {
  const auto size = image->GetLargestPossibleRegion().GetSize();
  auto* out = image->GetBufferPointer();
  for (unsigned z = 0; z < size[2]; ++z)
    for (unsigned y = 0; y < size[1]; ++y)
      for (unsigned x = 0; x < size[0]; ++x) {
        itk::Point<double, 3> p;
        image->TransformIndexToPhysicalPoint({{long(x), long(y), long(z)}}, p);
        out[(std::size_t(z) * size[1] + y) * size[0] + x] = value_at(p);
      }
}

}  // namespace

Image::Pointer make_volume(const Grid& g, const std::vector<Blob>& blobs, float background) {
  auto image = allocate<Image>(g);
  paint(image.GetPointer(), [&](const itk::Point<double, 3>& p) {
    float v = background;
    for (const auto& b : blobs)
      if (inside(b, p)) v = b.value;
    return v;
  });
  return image;
}

LabelImage::Pointer make_labels(const Grid& g, const std::vector<std::pair<int, Blob>>& blobs) {
  auto image = allocate<LabelImage>(g);
  paint(image.GetPointer(), [&](const itk::Point<double, 3>& p) {
    std::uint16_t v = 0;
    for (const auto& [label, b] : blobs)
      if (inside(b, p)) v = std::uint16_t(label);
    return v;
  });
  return image;
}

std::array<int, 3> pixel(vtkImageData* picture, int x, int y) {
  const auto* q = static_cast<const unsigned char*>(picture->GetScalarPointer(x, y, 0));
  return {q[0], q[1], q[2]};
}

vtkSmartPointer<vtkImageData> read_png(const std::filesystem::path& png) {
  vtkNew<vtkPNGReader> reader;
  reader->SetFileName(png.string().c_str());
  reader->Update();
  auto image = vtkSmartPointer<vtkImageData>::New();
  image->DeepCopy(reader->GetOutput());
  return image;
}

std::string compare_golden(vtkImageData* picture, const std::string& name, int tolerance, double max_fraction) {
  const auto golden = sagitta::testing::source_dir() / "testdata" / "golden" / (name + ".png");
  const char* update = std::getenv("SAGITTA_UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    write_png(picture, golden);
    return "";
  }
  if (!std::filesystem::exists(golden))
    return golden.string() + " is missing (run the test with SAGITTA_UPDATE_GOLDEN=1 to create it)";
  auto reference = read_png(golden);
  int a[3], b[3];
  picture->GetDimensions(a);
  reference->GetDimensions(b);
  if (a[0] != b[0] || a[1] != b[1]) return "size differs from " + golden.string();
  const int ca = picture->GetNumberOfScalarComponents(), cb = reference->GetNumberOfScalarComponents();
  const auto* p = static_cast<const unsigned char*>(picture->GetScalarPointer());
  const auto* q = static_cast<const unsigned char*>(reference->GetScalarPointer());
  std::size_t differing = 0;
  const std::size_t n = std::size_t(a[0]) * std::size_t(a[1]);
  for (std::size_t i = 0; i < n; ++i)
    for (int k = 0; k < 3; ++k)
      if (std::abs(int(p[i * std::size_t(ca) + std::size_t(k)]) - int(q[i * std::size_t(cb) + std::size_t(k)])) > tolerance) {
        ++differing;
        break;
      }
  const double fraction = double(differing) / double(n);
  if (fraction > max_fraction) {
    const auto folder = sagitta::testing::binary_dir() / "golden_failures";
    std::filesystem::create_directories(folder);
    const auto actual = folder / (name + "-actual.png");
    write_png(picture, actual);
    return std::to_string(fraction * 100) + "% of pixels differ from " + golden.string() + " (actual: " +
           actual.string() + ")";
  }
  return "";
}

}  // namespace sagitta::viewer::testing

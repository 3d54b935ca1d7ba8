#pragma once
// In-memory phantoms for the viewer suites: volumes and label maps with known geometry and
// blobs at known patient (LPS, mm) points, plus picture helpers (blob centroids, golden files).
#include <vtkImageData.h>
#include <vtkSmartPointer.h>

#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/viewer/overlays.h"

namespace sagitta::viewer::testing {

struct Blob {
  Vec3 centre{};
  Vec3 semi_axes{3, 3, 3};  // mm, along L, P, S
  float value = 1000;
};

struct Grid {
  std::array<unsigned, 3> size{64, 64, 40};
  Vec3 spacing{0.8, 0.8, 2.0};
  Vec3 origin{0, 0, 0};  // set by centred()
  std::array<double, 9> direction{1, 0, 0, 0, 1, 0, 0, 0, 1};  // row-major, columns = axes
  // The grid's centre voxel at `centre` (LPS).
  Grid centred(const Vec3& centre = {0, 0, 0}) const;
};

// Direction of a rotation by `degrees` about z followed by `tilt` about x (an oblique scan).
std::array<double, 9> oblique_direction(double degrees_z, double degrees_x);

Image::Pointer make_volume(const Grid& g, const std::vector<Blob>& blobs, float background = 0);
LabelImage::Pointer make_labels(const Grid& g, const std::vector<std::pair<int, Blob>>& blobs);

// Picture helpers. Pictures are VTK RGB images (row 0 at the bottom).
struct Centroid {
  double x = -1, y = -1;  // display pixels, origin bottom-left
  std::size_t pixels = 0;
};
// Centroid of pixels within the rectangle [x0,x1)x[y0,y1) matching `predicate(r,g,b)`.
template <typename Pred>
Centroid centroid(vtkImageData* picture, Pred predicate, int x0 = 0, int y0 = 0, int x1 = 1 << 30, int y1 = 1 << 30);
std::array<int, 3> pixel(vtkImageData* picture, int x, int y);

vtkSmartPointer<vtkImageData> read_png(const std::filesystem::path& png);

// Compares with testdata/golden/<name>.png: fails when more than `max_fraction` of the pixels
// differ by more than `tolerance` in any channel. With SAGITTA_UPDATE_GOLDEN=1 the golden file
// is (re)written instead. Returns an empty string on success, else the reason.
std::string compare_golden(vtkImageData* picture, const std::string& name, int tolerance = 40,
                           double max_fraction = 0.01);

// --- template implementation ---
template <typename Pred>
Centroid centroid(vtkImageData* picture, Pred predicate, int x0, int y0, int x1, int y1) {
  int dims[3];
  picture->GetDimensions(dims);
  x1 = std::min(x1, dims[0]);
  y1 = std::min(y1, dims[1]);
  const int comps = picture->GetNumberOfScalarComponents();
  const auto* p = static_cast<const unsigned char*>(picture->GetScalarPointer());
  double sx = 0, sy = 0;
  Centroid c;
  for (int y = std::max(0, y0); y < y1; ++y)
    for (int x = std::max(0, x0); x < x1; ++x) {
      const unsigned char* q = p + (static_cast<std::size_t>(y) * dims[0] + x) * comps;
      if (!predicate(q[0], q[1], q[2])) continue;
      sx += x;
      sy += y;
      ++c.pixels;
    }
  if (c.pixels) {
    c.x = sx / c.pixels;
    c.y = sy / c.pixels;
  }
  return c;
}

}  // namespace sagitta::viewer::testing

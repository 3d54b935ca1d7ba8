// Where a slice view's pixels are in the patient (the declarations and their contract:
// sagitta/viewer/slice_geometry.h).
#include "sagitta/viewer/slice_geometry.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sagitta::viewer {

std::string to_string(Orientation o) {
  switch (o) {
    case Orientation::Axial: return "axial";
    case Orientation::Coronal: return "coronal";
    case Orientation::Sagittal: return "sagittal";
  }
  return "?";
}

PlaneAxes plane_axes(Orientation o) {
  switch (o) {
    case Orientation::Axial: return {{1, 0, 0}, {0, -1, 0}, {0, 0, 1}, {'R', 'L', 'A', 'P'}};
    case Orientation::Coronal: return {{1, 0, 0}, {0, 0, 1}, {0, 1, 0}, {'R', 'L', 'S', 'I'}};
    case Orientation::Sagittal: return {{0, 1, 0}, {0, 0, 1}, {1, 0, 0}, {'A', 'P', 'S', 'I'}};
  }
  return {};
}

namespace {
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
}  // namespace

SliceGrid SliceGrid::of(const itk::ImageBase<3>* volume, Orientation o) {
  SliceGrid g;
  g.orientation = o;
  g.axes = plane_axes(o);
  const std::array<Vec3, 3> axis{g.axes.right, g.axes.up, g.axes.normal};
  const auto size = volume->GetLargestPossibleRegion().GetSize();
  const auto& dir = volume->GetDirection();
  const auto& sp = volume->GetSpacing();

  for (int a = 0; a < 3; ++a) {
    double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
    for (int corner = 0; corner < 8; ++corner) {
      itk::ContinuousIndex<double, 3> idx;
      for (unsigned d = 0; d < 3; ++d) idx[d] = (corner >> d & 1) ? double(size[d] - 1) : 0.0;
      itk::Point<double, 3> p;
      volume->TransformContinuousIndexToPhysicalPoint(idx, p);
      const double c = dot({p[0], p[1], p[2]}, axis[a]);
      lo = std::min(lo, c);
      hi = std::max(hi, c);
    }
    // The voxel axis most aligned with this view axis sets its spacing.
    unsigned best = 0;
    double best_dot = -1;
    for (unsigned d = 0; d < 3; ++d) {
      const double al = std::fabs(dir(0, d) * axis[a][0] + dir(1, d) * axis[a][1] + dir(2, d) * axis[a][2]);
      if (al > best_dot + 1e-9) {
        best_dot = al;
        best = d;
      }
    }
    g.spacing[a] = sp[best];
    g.origin[a] = lo;
    g.size[a] = std::max(1, static_cast<int>(std::floor((hi - lo) / g.spacing[a] + 1e-6)) + 1);
  }
  return g;
}

Vec3 SliceGrid::plane_coordinates(const Vec3& lps) const {
  return {dot(lps, axes.right), dot(lps, axes.up), dot(lps, axes.normal)};
}

Vec3 SliceGrid::patient_point(double i, double j, double k) const {
  const double r = origin[0] + i * spacing[0], u = origin[1] + j * spacing[1], n = origin[2] + k * spacing[2];
  Vec3 p{};
  for (int d = 0; d < 3; ++d) p[d] = r * axes.right[d] + u * axes.up[d] + n * axes.normal[d];
  return p;
}

int SliceGrid::slice_of(const Vec3& lps) const {
  const double k = (plane_coordinates(lps)[2] - origin[2]) / spacing[2];
  return std::clamp(static_cast<int>(std::lround(k)), 0, size[2] - 1);
}

}  // namespace sagitta::viewer

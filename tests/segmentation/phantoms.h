#pragma once
// Synthetic volumes with explicit geometry for the segmentation tests.
#include <itkImage.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <cmath>
#include <functional>

#include "sagitta/segmentation/images.h"

namespace sagitta::testing {

// An image of `size` voxels whose value at each index is f(x, y, z) (physical point, LPS mm), on
// a grid with any direction (columns: the LPS vectors of the image's axes).
inline segmentation::Image::Pointer make_volume(std::array<unsigned, 3> size, std::array<double, 3> spacing,
                                                const std::function<float(double, double, double)>& f,
                                                std::array<double, 3> origin,
                                                const segmentation::Image::DirectionType& direction) {
  auto image = segmentation::Image::New();
  segmentation::Image::RegionType region;
  for (int a = 0; a < 3; ++a) region.SetSize(a, size[a]);
  image->SetRegions(region);
  segmentation::Image::SpacingType s;
  segmentation::Image::PointType o;
  for (int a = 0; a < 3; ++a) s[a] = spacing[a], o[a] = origin[a];
  image->SetSpacing(s);
  image->SetOrigin(o);
  image->SetDirection(direction);
  image->Allocate();
  itk::ImageRegionIteratorWithIndex<segmentation::Image> it(image, region);
  for (; !it.IsAtEnd(); ++it) {
    segmentation::Image::PointType p;
    image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    it.Set(f(p[0], p[1], p[2]));
  }
  return image;
}

// The same on an axial grid, rotated by `oblique_degrees` about z.
inline segmentation::Image::Pointer make_volume(
    std::array<unsigned, 3> size, std::array<double, 3> spacing, const std::function<float(double, double, double)>& f,
    std::array<double, 3> origin = {0, 0, 0}, double oblique_degrees = 0) {
  segmentation::Image::DirectionType d;
  d.SetIdentity();
  const double t = oblique_degrees * M_PI / 180;
  d[0][0] = std::cos(t), d[0][1] = -std::sin(t), d[1][0] = std::sin(t), d[1][1] = std::cos(t);
  return make_volume(size, spacing, f, origin, d);
}

}  // namespace sagitta::testing

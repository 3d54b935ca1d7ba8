#pragma once
// The phantom of train_ras_model.py (testdata/models/ras_phantom) in LPS physical space, stored on
// grids of any orientation, and Dice against its truth. Shared by the orientation and model-source
// tests.
#include <itkImageRegionConstIteratorWithIndex.h>

#include <array>
#include <initializer_list>

#include "phantoms.h"
#include "sagitta/segmentation/images.h"

namespace sagitta::testing::ras {
namespace seg = sagitta::segmentation;

// The phantom in LPS mm about the origin: the patient's left is +x.
struct Phantom {
  double left[3], right[3];  // sphere centres, LPS
  float value(double x, double y, double z) const {
    const auto in = [&](const double* c) {
      return (x - c[0]) * (x - c[0]) + (y - c[1]) * (y - c[1]) + (z - c[2]) * (z - c[2]) <= 36.0;
    };
    if (in(left) || in(right)) return 200;
    return (x / 22) * (x / 22) + (y / 15) * (y / 15) + (z / 16) * (z / 16) <= 1 ? 100 : 0;
  }
  int label(double x, double y, double z) const {
    const auto in = [&](const double* c) {
      return (x - c[0]) * (x - c[0]) + (y - c[1]) * (y - c[1]) + (z - c[2]) * (z - c[2]) <= 36.0;
    };
    return in(left) ? 1 : in(right) ? 2 : 0;
  }
};

// A volume of the phantom on a grid with the given direction (columns: LPS axis vectors), 1.2 mm
// voxels, centred on the origin. The model's 2 mm grid of any of them fits in one patch.
inline seg::Image::Pointer stored(const Phantom& p, const seg::Image::DirectionType& d, std::array<unsigned, 3> size) {
  std::array<double, 3> origin{};
  for (unsigned w = 0; w < 3; ++w)
    for (unsigned a = 0; a < 3; ++a) origin[w] -= d[w][a] * 1.2 * (double(size[a]) - 1) / 2;
  return make_volume(size, {1.2, 1.2, 1.2}, [&p](double x, double y, double z) { return p.value(x, y, z); }, origin, d);
}

// Dice of label `value` in `labels` against the phantom's truth at the same voxels.
inline double dice(const seg::LabelImage& labels, const Phantom& p, int value) {
  itk::ImageRegionConstIteratorWithIndex<seg::LabelImage> it(&labels, labels.GetLargestPossibleRegion());
  double both = 0, a = 0, b = 0;
  for (; !it.IsAtEnd(); ++it) {
    seg::LabelImage::PointType q;
    labels.TransformIndexToPhysicalPoint(it.GetIndex(), q);
    const bool truth = p.label(q[0], q[1], q[2]) == value, found = it.Get() == value;
    both += truth && found, a += truth, b += found;
  }
  return a + b > 0 ? 2 * both / (a + b) : 1;
}

inline seg::Image::DirectionType direction(std::initializer_list<double> rows) {
  seg::Image::DirectionType d;
  auto v = rows.begin();
  for (unsigned r = 0; r < 3; ++r)
    for (unsigned c = 0; c < 3; ++c) d[r][c] = *v++;
  return d;
}

}  // namespace sagitta::testing::ras

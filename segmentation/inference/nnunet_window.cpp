// nnU-Net's sliding-window rules (nnunetv2 inference/sliding_window_prediction.py), torch-free:
// the window steps along an axis and the Gaussian importance map, as the predictor builds them.
// The window engine uses them for StepRule::NnUNet and ImportanceMap::NnUNet.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/nnunet.h"

namespace sagitta::segmentation::nnunet {

std::vector<int> sliding_window_steps(int size, int tile, double tile_step_size) {
  if (!(tile_step_size > 0 && tile_step_size <= 1))
    throw SegmentationError(fmt::format("tile step size {} is outside (0, 1]", tile_step_size));
  if (size <= tile) return {0};
  // compute_steps_for_sliding_window: as many steps as a step of tile * tile_step_size needs,
  // spread evenly over [0, size - tile], each rounded half to even (np.round).
  const double target = double(tile) * tile_step_size;
  const int steps = int(std::ceil(double(size - tile) / target)) + 1;
  const double actual = double(size - tile) / double(steps - 1);
  std::vector<int> out;
  for (int i = 0; i < steps; ++i) out.push_back(int(std::nearbyint(actual * double(i))));
  return out;
}

namespace {
// a * 2^k is exact in binary floating point, so each step below rounds only once.
template <typename T>
float nearest_half(T f) {
  if (!std::isfinite(f) || f == 0) return float(f);
  const T a = std::fabs(f);
  if (a >= T(65520)) return std::copysign(std::numeric_limits<float>::infinity(), float(f));
  T q;
  if (a < T(6.103515625e-05)) {  // below the smallest normal half: steps of 2^-24
    q = std::nearbyint(a * T(16777216)) / T(16777216);
  } else {  // 11 significant bits
    int e = 0;
    std::frexp(a, &e);
    const T scale = std::ldexp(T(1), 11 - e);
    q = std::nearbyint(a * scale) / scale;
  }
  return float(std::copysign(q, f));
}
}  // namespace

float round_to_half(float f) { return nearest_half(f); }
float round_to_half(double f) { return nearest_half(f); }

std::vector<float> gaussian_importance(const std::vector<int>& tile, double sigma_scale, double value_scaling, bool half) {
  if (tile.empty() || tile.size() > 3) throw SegmentationError("gaussian_importance: the tile needs 1 to 3 axes");
  // gaussian_filter of a delta at tile // 2 (mode constant): per axis the normalised kernel
  // exp(-d^2 / (2 sigma^2)) truncated at int(4 sigma + 0.5), sigma = tile * sigma_scale.
  std::vector<std::vector<double>> axis;
  for (int p : tile) {
    if (p < 1) throw SegmentationError("gaussian_importance: a tile axis is empty");
    const double sigma = double(p) * sigma_scale;
    const int radius = int(4.0 * sigma + 0.5);
    std::vector<double> kernel(std::size_t(2 * radius + 1));
    double sum = 0;
    for (int x = -radius; x <= radius; ++x) sum += kernel[std::size_t(x + radius)] = std::exp(-0.5 / (sigma * sigma) * double(x * x));
    for (double& k : kernel) k /= sum;
    const int c = p / 2;
    std::vector<double> w(std::size_t(p), 0.0);
    for (int i = 0; i < p; ++i)
      if (std::abs(i - c) <= radius) w[std::size_t(i)] = kernel[std::size_t(i - c + radius)];
    axis.push_back(w);
  }
  while (axis.size() < 3) axis.insert(axis.begin(), std::vector<double>{1.0});
  std::vector<double> map;
  map.reserve(axis[0].size() * axis[1].size() * axis[2].size());
  for (double a : axis[0])
    for (double b : axis[1])
      for (double c : axis[2]) map.push_back(a * b * c);
  const double peak = *std::max_element(map.begin(), map.end());
  std::vector<float> out(map.size());
  for (std::size_t i = 0; i < map.size(); ++i) {
    const float v = float(map[i] / peak * value_scaling);  // float64 -> float32 (-> float16, as torch converts)
    out[i] = half ? round_to_half(v) : v;
  }
  float smallest = std::numeric_limits<float>::infinity();
  for (float v : out)
    if (v != 0) smallest = std::min(smallest, v);
  for (float& v : out)
    if (v == 0) v = smallest;  // "cannot be 0, otherwise we may end up with nans"
  return out;
}

}  // namespace sagitta::segmentation::nnunet

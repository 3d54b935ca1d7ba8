// The card's intensity normalisations (normalise.h): one implementation for inference and training.
#include "normalise.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace sagitta::segmentation {
namespace detail {

namespace {

// The values per-volume statistics are taken over (Normalization::Mask) and whether zero voxels
// keep their value.
struct Selection {
  bool nonzero_only = false;  // statistics over the non-zero voxels
  bool keep_zeros = false;    // zero voxels stay zero
  std::size_t used = 0;
};

Selection select(const float* src, std::size_t count, Normalization::Mask mask) {
  Selection s;
  std::size_t nonzero = 0;
  for (std::size_t i = 0; i < count; ++i) nonzero += src[i] != 0;
  switch (mask) {
    case Normalization::Mask::All: break;
    case Normalization::Mask::Auto: s.nonzero_only = nonzero > 0 && nonzero < count; break;
    case Normalization::Mask::NonZero: s.nonzero_only = s.keep_zeros = true; break;
  }
  s.used = s.nonzero_only ? nonzero : count;
  return s;
}

// Percentile `q` (0..100) of the selected values, interpolated linearly between order statistics
// (numpy's and torch.quantile's default).
double percentile(std::vector<float>& values, double q) {
  if (values.empty()) return 0;
  const double pos = q / 100.0 * double(values.size() - 1);
  const std::size_t lo = std::size_t(std::floor(pos));
  const std::size_t hi = std::min(values.size() - 1, lo + 1);
  std::nth_element(values.begin(), values.begin() + std::ptrdiff_t(lo), values.end());
  const double a = values[lo];
  if (hi == lo) return a;
  const double b = *std::min_element(values.begin() + std::ptrdiff_t(lo) + 1, values.end());
  return a + (b - a) * (pos - double(lo));
}

std::vector<float> selected(const float* src, std::size_t count, const Selection& s) {
  std::vector<float> v;
  v.reserve(s.used);
  for (std::size_t i = 0; i < count; ++i)
    if (!s.nonzero_only || src[i] != 0) v.push_back(src[i]);
  return v;
}

// Mean and standard deviation of the selected values (population, as numpy's std); the standard
// deviation is 1 when the values are constant.
std::pair<double, double> mean_std(const float* src, std::size_t count, const Selection& s) {
  double sum = 0, sum2 = 0;
  for (std::size_t i = 0; i < count; ++i)
    if (!s.nonzero_only || src[i] != 0) sum += src[i], sum2 += double(src[i]) * src[i];
  const double n = double(std::max<std::size_t>(1, s.used));
  const double mean = sum / n;
  const double sd = std::sqrt(std::max(0.0, sum2 / n - mean * mean));
  return {mean, sd > 1e-8 ? sd : 1.0};
}

std::string over(const Selection& s, std::size_t count) {
  return s.nonzero_only ? fmt::format("{} non-zero of {} voxels", s.used, count) : fmt::format("all {} voxels", count);
}

// dst = (clamp(src, lo, hi) - offset) * scale (+ b), zero voxels kept when asked.
void affine(const float* src, float* dst, std::size_t count, const Selection& s, double lo, double hi, double offset,
            double scale, double add) {
  const float l = float(lo), h = float(hi), o = float(offset), k = float(scale), b = float(add);
  for (std::size_t i = 0; i < count; ++i) {
    if (s.keep_zeros && src[i] == 0) {
      dst[i] = 0;
      continue;
    }
    dst[i] = (std::clamp(src[i], l, h) - o) * k + b;
  }
}

constexpr double kInf = std::numeric_limits<double>::infinity();

}  // namespace

std::string normalise(const float* src, float* dst, std::size_t count, const Normalization& n, const std::string& what) {
  using S = Normalization::Scheme;
  switch (n.scheme) {
    case S::CT: {
      const float lo = float(n.clip_low), hi = float(n.clip_high), mean = float(n.mean), inv = float(1.0 / n.std);
      for (std::size_t i = 0; i < count; ++i) dst[i] = (std::clamp(src[i], lo, hi) - mean) * inv;
      return fmt::format("{}: CT normalisation, clip to [{}, {}], then (x - {}) / {}", what, n.clip_low, n.clip_high,
                         n.mean, n.std);
    }
    case S::Fixed: {
      const float mean = float(n.mean), inv = float(1.0 / n.std);
      for (std::size_t i = 0; i < count; ++i) dst[i] = (src[i] - mean) * inv;
      return fmt::format("{}: fixed normalisation (x - {}) / {}", what, n.mean, n.std);
    }
    case S::ZScore: {
      const Selection s = select(src, count, n.mask);
      const auto [mean, sd] = mean_std(src, count, s);
      affine(src, dst, count, s, -kInf, kInf, mean, 1.0 / sd, 0);
      return fmt::format("{}: z-score normalisation over {} (mean {:.4g}, std {:.4g})", what, over(s, count), mean, sd);
    }
    case S::Percentile: {
      const Selection s = select(src, count, n.mask);
      std::vector<float> values = selected(src, count, s);
      const double lo = percentile(values, n.lower), hi = percentile(values, n.upper);
      values = {};
      if (n.zscore) {
        // Statistics of the clipped values.
        double sum = 0, sum2 = 0;
        for (std::size_t i = 0; i < count; ++i)
          if (!s.nonzero_only || src[i] != 0) {
            const double c = std::clamp(src[i], float(lo), float(hi));
            sum += c, sum2 += c * c;
          }
        const double m = sum / double(std::max<std::size_t>(1, s.used));
        double sd = std::sqrt(std::max(0.0, sum2 / double(std::max<std::size_t>(1, s.used)) - m * m));
        if (!(sd > 1e-8)) sd = 1;
        affine(src, dst, count, s, lo, hi, m, 1.0 / sd, 0);
        return fmt::format("{}: clip to the {}th-{}th percentiles [{:.4g}, {:.4g}] over {}, then z-score (mean {:.4g}, std {:.4g})",
                           what, n.lower, n.upper, lo, hi, over(s, count), m, sd);
      }
      // A constant volume maps to b_min (MONAI shifts it there too).
      const double range = hi - lo;
      const double scale = range > 0 ? (n.b_max - n.b_min) / range : 0;
      affine(src, dst, count, s, n.clip ? lo : -kInf, n.clip ? hi : kInf, lo, scale, n.b_min);
      return fmt::format("{}: the {}th-{}th percentiles [{:.4g}, {:.4g}] over {} scaled to [{}, {}]{}", what, n.lower,
                         n.upper, lo, hi, over(s, count), n.b_min, n.b_max, n.clip ? ", clipped" : "");
    }
    case S::MinMax: {
      const Selection s = select(src, count, n.mask);
      double lo = kInf, hi = -kInf;
      for (std::size_t i = 0; i < count; ++i)
        if (!s.nonzero_only || src[i] != 0) lo = std::min(lo, double(src[i])), hi = std::max(hi, double(src[i]));
      if (!(hi > lo)) lo = 0, hi = 1;
      affine(src, dst, count, s, -kInf, kInf, lo, 1.0 / (hi - lo), 0);
      return fmt::format("{}: min-max scaling of [{:.4g}, {:.4g}] over {} to [0, 1]", what, lo, hi, over(s, count));
    }
    case S::Range: {
      const double scale = (n.b_max - n.b_min) / (n.a_max - n.a_min);
      // Clipping the result to [b_min, b_max] is clipping the input to [a_min, a_max].
      affine(src, dst, count, Selection{}, n.clip ? std::min(n.a_min, n.a_max) : -kInf,
             n.clip ? std::max(n.a_min, n.a_max) : kInf, n.a_min, scale, n.b_min);
      return fmt::format("{}: [{}, {}] scaled to [{}, {}]{}", what, n.a_min, n.a_max, n.b_min, n.b_max,
                         n.clip ? ", clipped" : "");
    }
    case S::None:
      if (dst != src) std::copy(src, src + count, dst);
      return "";
  }
  return "";
}

void normalise(std::vector<float>& values, const Normalization& n) {
  normalise(values.data(), values.data(), values.size(), n, "");
}

}  // namespace detail

}  // namespace sagitta::segmentation

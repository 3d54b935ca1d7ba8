// nnU-Net's resampling (nnunetv2 default_resampling.resample_data_or_seg_to_shape with is_seg False)
// with the semantics of the libraries it calls, written from their documented behaviour:
// - skimage.transform.resize(order, mode='edge', anti_aliasing=False) is scipy.ndimage.zoom with
//   grid_mode=True and mode 'nearest': output voxel k samples the input at (k + 0.5) * in/out - 0.5,
//   then the output is clipped to the input's [min, max];
// - for spline orders > 1 scipy first pads 12 voxels by edge replication on every axis, computes
//   the B-spline coefficients of the padded array (mirror boundary), and interpolates there;
//   orders 0 and 1 interpolate the samples directly, indices clamped to the array ('nearest');
// - the separate-z path resizes each slice in-plane, then along the low-res axis uses
//   map_coordinates(order_z, mode 'nearest') at scale * (k + 0.5) - 0.5.
// Everything runs in float64 as nnU-Net's data.astype(float); results are float32.
// The tensor-product spline is applied axis by axis (filters and interpolations along different
// axes commute), which equals scipy's joint evaluation up to float64 rounding.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/nnunet.h"

namespace sagitta::segmentation::nnunet {
namespace {

constexpr int kPrepad = 12;  // scipy.ndimage _prepad_for_spline_filter for mode 'nearest'

struct Grid {  // float64 working array, C order
  Shape shape{};
  std::vector<double> v;
};

// Cubic B-spline coefficients of one line in place (gain, causal and anti-causal passes with
// mirror-symmetric initial conditions, pole sqrt(3) - 2).
void spline_filter3(std::vector<double>& c) {
  const std::size_t n = c.size();
  if (n < 2) return;
  const double z = std::sqrt(3.0) - 2.0;
  const double gain = (1 - z) * (1 - 1 / z);
  for (double& x : c) x *= gain;
  // causal initial value: the mirror-extended infinite sum, closed form over one period
  const double zn1 = std::pow(z, double(n - 1));
  double c0 = c[0] + zn1 * c[n - 1], zi = z;
  for (std::size_t i = 1; i + 1 < n; ++i) {
    c0 += zi * (c[i] + zn1 * c[n - 1 - i]);
    zi *= z;
  }
  c[0] = c0 / (1 - zn1 * zn1);
  for (std::size_t i = 1; i < n; ++i) c[i] += z * c[i - 1];
  c[n - 1] = (z * c[n - 2] + c[n - 1]) * z / (z * z - 1);
  for (std::size_t i = n - 1; i-- > 0;) c[i] = z * (c[i + 1] - c[i]);
}

// Per output index: the first input index and order + 1 weights.
struct Taps {
  int order = 1;
  std::vector<int64_t> start;
  std::vector<double> w;  // (order + 1) per output index
};

void weights_at(double cc, int order, int64_t& start, double* w) {
  if (order == 0) {
    start = int64_t(std::floor(cc + 0.5));
    w[0] = 1;
  } else if (order == 1) {
    start = int64_t(std::floor(cc));
    const double t = cc - double(start);
    w[0] = 1 - t;
    w[1] = 1 - w[0];  // scipy's weights sum to one by construction: the last is 1 minus the others
  } else {  // 3
    const double f = std::floor(cc);
    start = int64_t(f) - 1;
    const double t = cc - f, u = 1 - t;
    w[0] = u * u * u / 6;
    w[1] = (3 * t * t * t - 6 * t * t + 4) / 6;
    w[2] = (-3 * t * t * t + 3 * t * t + 3 * t + 1) / 6;
    w[3] = t * t * t / 6;
  }
}

// Output k of `out_len` sampling an input of `in_len` (grid mode), shifted by `offset` (prepad).
Taps zoom_taps(int64_t in_len, int64_t out_len, int order, int offset) {
  Taps t;
  t.order = order;
  t.start.resize(std::size_t(out_len));
  t.w.resize(std::size_t(out_len) * std::size_t(order + 1));
  const double zoom = double(in_len) / double(out_len);
  for (int64_t k = 0; k < out_len; ++k) {
    double cc = double(k);
    cc += 0.5;
    cc *= zoom;
    cc -= 0.5;
    cc += double(offset);
    weights_at(cc, order, t.start[std::size_t(k)], &t.w[std::size_t(k) * std::size_t(order + 1)]);
  }
  return t;
}

// map_coordinates' sampling along one axis at scale * (k + 0.5) - 0.5 (nnU-Net's coord_map).
Taps coordinate_taps(int64_t in_len, int64_t out_len, int order) {
  Taps t;
  t.order = order;
  t.start.resize(std::size_t(out_len));
  t.w.resize(std::size_t(out_len) * std::size_t(order + 1));
  const double scale = double(in_len) / double(out_len);
  for (int64_t k = 0; k < out_len; ++k)
    weights_at(scale * (double(k) + 0.5) - 0.5, order, t.start[std::size_t(k)],
               &t.w[std::size_t(k) * std::size_t(order + 1)]);
  return t;
}

void interpolate_line(const std::vector<double>& in, const Taps& t, double* out, int64_t stride) {
  const int64_t n = int64_t(in.size());
  const std::size_t taps = std::size_t(t.order + 1);
  for (std::size_t k = 0; k < t.start.size(); ++k) {
    double s = 0;
    for (std::size_t i = 0; i < taps; ++i) {
      const int64_t idx = std::clamp<int64_t>(t.start[k] + int64_t(i), 0, n - 1);  // mode 'nearest'
      s += t.w[k * taps + i] * in[std::size_t(idx)];
    }
    out[int64_t(k) * stride] = s;
  }
}

// One axis of `g` resampled to `out_len`: each line optionally edge-padded and spline-filtered,
// then interpolated with `taps`.
Grid along_axis(const Grid& g, int axis, int64_t out_len, const Taps& taps, bool spline) {
  Grid out;
  out.shape = g.shape;
  out.shape[std::size_t(axis)] = out_len;
  out.v.assign(std::size_t(out.shape[0] * out.shape[1] * out.shape[2]), 0.0);
  const Shape& s = g.shape;
  const int64_t n = s[std::size_t(axis)];
  const int64_t in_stride[3] = {s[1] * s[2], s[2], 1};
  const int64_t out_stride[3] = {out.shape[1] * out.shape[2], out.shape[2], 1};
  int o1 = (axis + 1) % 3, o2 = (axis + 2) % 3;
  if (o1 > o2) std::swap(o1, o2);
  std::vector<double> line;
  for (int64_t a = 0; a < s[std::size_t(o1)]; ++a)
    for (int64_t b = 0; b < s[std::size_t(o2)]; ++b) {
      const double* src = g.v.data() + a * in_stride[o1] + b * in_stride[o2];
      double* dst = out.v.data() + a * out_stride[o1] + b * out_stride[o2];
      if (spline) {
        line.assign(std::size_t(n + 2 * kPrepad), 0.0);
        for (int64_t i = 0; i < n + 2 * kPrepad; ++i)
          line[std::size_t(i)] = src[std::clamp<int64_t>(i - kPrepad, 0, n - 1) * in_stride[axis]];
        spline_filter3(line);
      } else {
        line.resize(std::size_t(n));
        for (int64_t i = 0; i < n; ++i) line[std::size_t(i)] = src[i * in_stride[axis]];
      }
      interpolate_line(line, taps, dst, out_stride[axis]);
    }
  return out;
}

// scipy.ndimage.zoom for spline orders 0 and 1 as its C loop evaluates it: per output voxel, the
// corners in C order (last axis fastest), each value multiplied by its weight along every zoomed
// axis in turn, summed. The same float64 operations in the same order give the same results to the
// last bit, so that the float16 rounding nnU-Net applies to resampled logits falls the same way at
// ties (which linear interpolation of float16 values hits in about 0.2% of voxels).
Grid resize_joint(const Grid& g, const Shape& new_shape, int order, const std::array<bool, 3>& axes) {
  const int64_t taps = order + 1;
  // Per axis and output index: the clamped input indices ('nearest') and weights of its taps; an
  // axis that is not zoomed has one tap, the output index itself, and no weight.
  std::vector<int64_t> index[3];
  std::vector<double> weight[3];
  int64_t count[3];
  Shape out_shape = g.shape;
  for (std::size_t a = 0; a < 3; ++a) {
    if (!axes[a]) {
      count[a] = 1;
      for (int64_t k = 0; k < g.shape[a]; ++k) index[a].push_back(k);
      continue;
    }
    out_shape[a] = new_shape[a];
    count[a] = taps;
    const Taps t = zoom_taps(g.shape[a], new_shape[a], order, 0);
    for (int64_t k = 0; k < new_shape[a]; ++k)
      for (int64_t i = 0; i < taps; ++i) {
        index[a].push_back(std::clamp<int64_t>(t.start[std::size_t(k)] + i, 0, g.shape[a] - 1));
        weight[a].push_back(t.w[std::size_t(k * taps + i)]);
      }
  }
  Grid out;
  out.shape = out_shape;
  out.v.resize(std::size_t(out_shape[0] * out_shape[1] * out_shape[2]));
  const int64_t ny = g.shape[1], nx = g.shape[2];
  const bool weigh[3] = {order > 0 && axes[0], order > 0 && axes[1], order > 0 && axes[2]};
  std::size_t o = 0;
  for (int64_t z = 0; z < out_shape[0]; ++z)
    for (int64_t y = 0; y < out_shape[1]; ++y)
      for (int64_t x = 0; x < out_shape[2]; ++x) {
        double t = 0;
        for (int64_t i = 0; i < count[0]; ++i) {
          const std::size_t iz = std::size_t(z * count[0] + i);
          for (int64_t j = 0; j < count[1]; ++j) {
            const std::size_t iy = std::size_t(y * count[1] + j);
            for (int64_t k = 0; k < count[2]; ++k) {
              const std::size_t ix = std::size_t(x * count[2] + k);
              double c = g.v[std::size_t((index[0][iz] * ny + index[1][iy]) * nx + index[2][ix])];
              if (weigh[0]) c *= weight[0][iz];
              if (weigh[1]) c *= weight[1][iy];
              if (weigh[2]) c *= weight[2][ix];
              t += c;
            }
          }
        }
        out.v[o++] = t;
      }
  return out;
}

// skimage.transform.resize(g, new shape over `axes`, order, mode='edge', anti_aliasing=False,
// clip=True): scipy.ndimage.zoom(grid_mode=True, mode='nearest'), clipped to the input's range.
Grid resize(const Grid& g, const Shape& new_shape, int order, const std::array<bool, 3>& axes) {
  if (order != 0 && order != 1 && order != 3)
    throw SegmentationError(fmt::format("nnU-Net resampling with spline order {} is not supported (0, 1 or 3)", order));
  const bool spline = order > 1;
  Grid out = g;
  if (!spline) {
    out = resize_joint(g, new_shape, order, axes);
  } else {
    for (int a = 0; a < 3; ++a) {
      if (!axes[std::size_t(a)]) continue;
      const Taps t = zoom_taps(g.shape[std::size_t(a)], new_shape[std::size_t(a)], order, kPrepad);
      out = along_axis(out, a, new_shape[std::size_t(a)], t, true);
    }
  }
  const auto [lo, hi] = std::minmax_element(g.v.begin(), g.v.end());
  for (double& x : out.v) x = std::clamp(x, *lo, *hi);
  return out;
}

Grid to_grid(const Array& a) {
  Grid g;
  g.shape = a.shape;
  g.v.assign(a.values.begin(), a.values.end());
  return g;
}

Array to_float(const Grid& g, bool half) {
  Array a(g.shape);
  for (std::size_t i = 0; i < g.v.size(); ++i) a.values[i] = half ? round_to_half(g.v[i]) : float(g.v[i]);
  return a;
}

// The separate-z path for one channel: every slice along `axis` resized in-plane, then
// map_coordinates(order_z, mode 'nearest') along the axis when its length changes.
Grid resample_separate(const Grid& g, const Shape& new_shape, int axis, int order, int order_z) {
  Shape here_shape = new_shape;
  here_shape[std::size_t(axis)] = g.shape[std::size_t(axis)];
  Grid here;
  here.shape = here_shape;
  here.v.assign(std::size_t(here_shape[0] * here_shape[1] * here_shape[2]), 0.0);
  std::array<bool, 3> in_plane{true, true, true};
  in_plane[std::size_t(axis)] = false;
  const int64_t in_stride[3] = {g.shape[1] * g.shape[2], g.shape[2], 1};
  const int64_t out_stride[3] = {here_shape[1] * here_shape[2], here_shape[2], 1};
  int o1 = (axis + 1) % 3, o2 = (axis + 2) % 3;
  if (o1 > o2) std::swap(o1, o2);
  for (int64_t s = 0; s < g.shape[std::size_t(axis)]; ++s) {
    Grid slice;  // the slice as a 3D grid with the slice axis of length 1
    slice.shape = g.shape;
    slice.shape[std::size_t(axis)] = 1;
    slice.v.resize(std::size_t(g.shape[std::size_t(o1)] * g.shape[std::size_t(o2)]));
    std::size_t i = 0;
    for (int64_t a = 0; a < g.shape[std::size_t(o1)]; ++a)
      for (int64_t b = 0; b < g.shape[std::size_t(o2)]; ++b)
        slice.v[i++] = g.v[std::size_t(s * in_stride[axis] + a * in_stride[o1] + b * in_stride[o2])];
    Shape slice_new = new_shape;
    slice_new[std::size_t(axis)] = 1;
    const Grid r = resize(slice, slice_new, order, in_plane);
    i = 0;
    for (int64_t a = 0; a < here_shape[std::size_t(o1)]; ++a)
      for (int64_t b = 0; b < here_shape[std::size_t(o2)]; ++b)
        here.v[std::size_t(s * out_stride[axis] + a * out_stride[o1] + b * out_stride[o2])] = r.v[i++];
  }
  if (g.shape[std::size_t(axis)] == new_shape[std::size_t(axis)]) return here;
  const Taps t = coordinate_taps(g.shape[std::size_t(axis)], new_shape[std::size_t(axis)], order_z);
  return along_axis(here, axis, new_shape[std::size_t(axis)], t, false);
}

}  // namespace

Shape compute_new_shape(const Shape& old_shape, const std::array<double, 3>& old_spacing,
                        const std::array<double, 3>& new_spacing) {
  Shape s{};
  for (std::size_t a = 0; a < 3; ++a)  // Python's round(): half to even, as nearbyint by default
    s[a] = int64_t(std::nearbyint(old_spacing[a] / new_spacing[a] * double(old_shape[a])));
  return s;
}

int separate_z_axis(const Resampling& r, const std::array<double, 3>& current_spacing,
                    const std::array<double, 3>& new_spacing) {
  const auto anisotropic = [&](const std::array<double, 3>& s) {
    return *std::max_element(s.begin(), s.end()) / *std::min_element(s.begin(), s.end()) > r.anisotropy_threshold;
  };
  const auto lowres = [](const std::array<double, 3>& s) {  // axes whose spacing is the largest
    const double m = *std::max_element(s.begin(), s.end());
    std::vector<int> axes;
    for (int a = 0; a < 3; ++a)
      if (m / s[std::size_t(a)] == 1) axes.push_back(a);
    return axes;
  };
  std::vector<int> axes;
  if (r.force_separate_z) {
    if (!*r.force_separate_z) return -1;
    axes = lowres(current_spacing);
  } else if (anisotropic(current_spacing)) {
    axes = lowres(current_spacing);
  } else if (anisotropic(new_spacing)) {
    axes = lowres(new_spacing);
  } else {
    return -1;
  }
  return axes.size() == 1 ? axes[0] : -1;  // two or three equally coarse axes: not separated
}

std::vector<Array> resample_to_shape(const std::vector<Array>& data, const Shape& new_shape,
                                     const std::array<double, 3>& current_spacing,
                                     const std::array<double, 3>& new_spacing, const Resampling& r, bool half) {
  if (data.empty()) return {};
  if (data[0].shape == new_shape) return data;
  const int axis = separate_z_axis(r, current_spacing, new_spacing);
  if (axis >= 0 && r.order_z != 0 && r.order_z != 1)
    throw SegmentationError(fmt::format("nnU-Net resampling with order_z {} is not supported (0 or 1)", r.order_z));
  std::vector<Array> out;
  for (const Array& c : data) {
    const Grid g = to_grid(c);
    out.push_back(to_float(axis >= 0 ? resample_separate(g, new_shape, axis, r.order, r.order_z)
                                     : resize(g, new_shape, r.order, {true, true, true}),
                           half));
  }
  return out;
}

}  // namespace sagitta::segmentation::nnunet

// Tissue detection on a slide thumbnail (saturation, Otsu, morphology), the tissue picture (PNG),
// and H&E colour deconvolution with the demo model's pseudo-labels.
#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <unistd.h>

#include "sagitta/segmentation/error.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/segmentation/wsi.h"

namespace sagitta::segmentation::wsi {
namespace fs = std::filesystem;

namespace {

float saturation(const std::uint8_t* p) {
  const int mx = std::max({p[0], p[1], p[2]}), mn = std::min({p[0], p[1], p[2]});
  return mx == 0 ? 0.0f : float(mx - mn) / float(mx);
}

// Otsu's threshold of values in [0, 1] (256 bins): the cut maximising the between-class variance.
double otsu(const std::vector<float>& values) {
  std::array<double, 256> hist{};
  for (float v : values) hist[std::size_t(std::clamp(int(v * 255.0f + 0.5f), 0, 255))] += 1;
  const double total = double(values.size());
  double sum_all = 0;
  for (int i = 0; i < 256; ++i) sum_all += i * hist[std::size_t(i)];
  double w0 = 0, sum0 = 0, best = -1;
  int cut = 0;
  for (int i = 0; i < 256; ++i) {
    w0 += hist[std::size_t(i)];
    sum0 += i * hist[std::size_t(i)];
    const double w1 = total - w0;
    if (w0 == 0 || w1 == 0) continue;
    const double m0 = sum0 / w0, m1 = (sum_all - sum0) / w1;
    const double between = w0 * w1 * (m0 - m1) * (m0 - m1);
    if (between > best) best = between, cut = i;
  }
  return (cut + 0.5) / 255.0;
}

// Separable square max (dilate) or min (erode) filter of radius r; the border replicates.
void morph(std::vector<std::uint8_t>& m, int w, int h, int r, bool dilate) {
  if (r <= 0) return;
  std::vector<std::uint8_t> tmp(m.size());
  auto pick = [dilate](std::uint8_t a, std::uint8_t b) { return dilate ? std::max(a, b) : std::min(a, b); };
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t v = m[std::size_t(y) * w + x];
      for (int d = -r; d <= r; ++d) v = pick(v, m[std::size_t(y) * w + std::clamp(x + d, 0, w - 1)]);
      tmp[std::size_t(y) * w + x] = v;
    }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t v = tmp[std::size_t(y) * w + x];
      for (int d = -r; d <= r; ++d) v = pick(v, tmp[std::size_t(std::clamp(y + d, 0, h - 1)) * w + x]);
      m[std::size_t(y) * w + x] = v;
    }
}

}  // namespace

double TissueMask::tissue_fraction() const {
  if (mask.empty()) return 0;
  return double(std::count(mask.begin(), mask.end(), std::uint8_t(1))) / double(mask.size());
}

double TissueMask::fraction(double x0, double y0, double x1, double y1) const {
  const long px0 = long(std::floor(x0 / downsample)), px1 = long(std::ceil(x1 / downsample));
  const long py0 = long(std::floor(y0 / downsample)), py1 = long(std::ceil(y1 / downsample));
  const double area = double(std::max(0L, px1 - px0)) * double(std::max(0L, py1 - py0));
  if (area <= 0) return 0;
  long count = 0;
  for (long y = std::max(0L, py0); y < std::min<long>(height, py1); ++y)
    for (long x = std::max(0L, px0); x < std::min<long>(width, px1); ++x) count += mask[std::size_t(y) * width + x];
  return double(count) / area;
}

TissueMask detect_tissue(const Slide& slide, const TissueOptions& options) {
  const SlideInfo& info = slide.info();
  const double w0 = double(info.levels[0].width), h0 = double(info.levels[0].height);
  TissueMask t;
  t.downsample = std::max(1.0, std::max(w0, h0) / double(std::max(16, options.max_side)));
  t.width = std::max(1, int(std::ceil(w0 / t.downsample)));
  t.height = std::max(1, int(std::ceil(h0 / t.downsample)));
  const int level = slide.best_level(t.downsample);
  const Level& lv = info.levels[std::size_t(level)];
  const double r = t.downsample / lv.downsample;  // level pixels per thumbnail pixel, >= 1

  // Box-average the level into the thumbnail, a band of thumbnail rows at a time, so memory is the
  // thumbnail plus one strip of the level whatever the slide's size.
  t.thumbnail = {t.width, t.height, std::vector<std::uint8_t>(std::size_t(t.width) * t.height * 3, 255)};
  const int band = 16;
  std::vector<double> sums, counts;
  for (int t0 = 0; t0 < t.height; t0 += band) {
    const int t1 = std::min(t.height, t0 + band);
    const std::int64_t y_begin = std::int64_t(std::ceil(t0 * r - 1e-9));
    const std::int64_t y_end = std::min<std::int64_t>(lv.height, std::int64_t(std::ceil(t1 * r - 1e-9)));
    if (y_end <= y_begin) continue;
    sums.assign(std::size_t(t1 - t0) * t.width * 3, 0.0);
    counts.assign(std::size_t(t1 - t0) * t.width, 0.0);
    // Read the strip in pieces of at most 4096 columns to bound the read buffer too.
    for (std::int64_t x_begin = 0; x_begin < lv.width; x_begin += 4096) {
      const int cw = int(std::min<std::int64_t>(4096, lv.width - x_begin));
      const RgbImage strip = slide.read_region(level, x_begin, y_begin, cw, int(y_end - y_begin));
      for (int sy = 0; sy < strip.height; ++sy) {
        const int ty = std::min(t1 - 1, int(double(y_begin + sy) / r)) - t0;
        for (int sx = 0; sx < cw; ++sx) {
          const int tx = std::min(t.width - 1, int(double(x_begin + sx) / r));
          const std::uint8_t* p = &strip.pixels[(std::size_t(sy) * cw + sx) * 3];
          const std::size_t k = std::size_t(ty) * t.width + tx;
          sums[k * 3] += p[0], sums[k * 3 + 1] += p[1], sums[k * 3 + 2] += p[2];
          counts[k] += 1;
        }
      }
    }
    for (int ty = t0; ty < t1; ++ty)
      for (int tx = 0; tx < t.width; ++tx) {
        const std::size_t k = std::size_t(ty - t0) * t.width + tx;
        if (counts[k] == 0) continue;
        for (int c = 0; c < 3; ++c)
          t.thumbnail.pixels[(std::size_t(ty) * t.width + tx) * 3 + c] = std::uint8_t(std::lround(sums[k * 3 + c] / counts[k]));
      }
  }

  std::vector<float> sat(std::size_t(t.width) * t.height);
  for (std::size_t i = 0; i < sat.size(); ++i) sat[i] = saturation(&t.thumbnail.pixels[i * 3]);
  t.threshold = std::max(options.min_saturation, otsu(sat));
  t.mask.resize(sat.size());
  for (std::size_t i = 0; i < sat.size(); ++i) t.mask[i] = sat[i] >= t.threshold ? 1 : 0;
  morph(t.mask, t.width, t.height, options.closing_radius, true);
  morph(t.mask, t.width, t.height, options.closing_radius, false);
  morph(t.mask, t.width, t.height, options.opening_radius, false);
  morph(t.mask, t.width, t.height, options.opening_radius, true);
  return t;
}

namespace {

// libpng reports errors by longjmp: nothing here lives across setjmp but the libpng structures.
bool encode_png(const RgbImage& image, FILE* f) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : nullptr);
    return false;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    png_write_row(png, const_cast<png_bytep>(&image.pixels[std::size_t(y) * std::size_t(image.width) * 3]));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

}  // namespace

void write_png(const RgbImage& image, const fs::path& path) {
  write_atomically(path, [&](const fs::path& tmp) {
    FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw SegmentationError("cannot write " + path.string());
    const bool encoded = encode_png(image, f);
    const bool closed = std::fclose(f) == 0;
    if (!encoded || !closed) throw SegmentationError("cannot write " + path.string() + " (disk full?)");
  });
}

void write_tissue_picture(const TissueMask& t, const fs::path& path) {
  RgbImage pic = t.thumbnail;
  for (int y = 0; y < t.height; ++y)
    for (int x = 0; x < t.width; ++x) {
      const std::size_t i = std::size_t(y) * t.width + x;
      std::uint8_t* p = &pic.pixels[i * 3];
      if (!t.mask[i]) {
        for (int c = 0; c < 3; ++c) p[c] = std::uint8_t((p[c] + 128) / 2);  // dim the background
        continue;
      }
      const bool edge = x == 0 || y == 0 || x == t.width - 1 || y == t.height - 1 || !t.mask[i - 1] ||
                        !t.mask[i + 1] || !t.mask[i - std::size_t(t.width)] || !t.mask[i + std::size_t(t.width)];
      if (edge) p[0] = 0, p[1] = 200, p[2] = 0;
    }
  write_png(pic, path);
}

StainDensities deconvolve_he(const RgbImage& image) {
  // Ruifrok & Johnston's H&E optical density vectors; the third stain is their cross product so
  // the matrix is invertible and the residual absorbs what is neither H nor E.
  std::array<std::array<double, 3>, 3> m{{{0.650, 0.704, 0.286}, {0.072, 0.990, 0.105}, {0, 0, 0}}};
  for (int k = 0; k < 2; ++k) {
    const double n = std::sqrt(m[k][0] * m[k][0] + m[k][1] * m[k][1] + m[k][2] * m[k][2]);
    for (auto& v : m[std::size_t(k)]) v /= n;
  }
  m[2] = {m[0][1] * m[1][2] - m[0][2] * m[1][1], m[0][2] * m[1][0] - m[0][0] * m[1][2], m[0][0] * m[1][1] - m[0][1] * m[1][0]};
  const double n2 = std::sqrt(m[2][0] * m[2][0] + m[2][1] * m[2][1] + m[2][2] * m[2][2]);
  for (auto& v : m[2]) v /= n2;
  // OD (row vector, per RGB channel) = concentrations x M, so concentrations = OD x M^-1.
  const double det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
                     m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
  std::array<std::array<double, 3>, 3> inv{};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const int i1 = (j + 1) % 3, i2 = (j + 2) % 3, j1 = (i + 1) % 3, j2 = (i + 2) % 3;
      inv[std::size_t(i)][std::size_t(j)] = (m[std::size_t(i1)][std::size_t(j1)] * m[std::size_t(i2)][std::size_t(j2)] -
                                             m[std::size_t(i1)][std::size_t(j2)] * m[std::size_t(i2)][std::size_t(j1)]) / det;
    }
  std::array<float, 256> od{};
  for (int v = 0; v < 256; ++v) od[std::size_t(v)] = float(-std::log10(std::max(v, 1) / 255.0));
  const std::size_t n = std::size_t(image.width) * image.height;
  StainDensities s{std::vector<float>(n), std::vector<float>(n)};
  for (std::size_t i = 0; i < n; ++i) {
    const float r = od[image.pixels[i * 3]], g = od[image.pixels[i * 3 + 1]], b = od[image.pixels[i * 3 + 2]];
    s.haematoxylin[i] = float(r * inv[0][0] + g * inv[1][0] + b * inv[2][0]);
    s.eosin[i] = float(r * inv[0][1] + g * inv[1][1] + b * inv[2][1]);
  }
  return s;
}

std::vector<std::uint8_t> he_pseudo_labels(const RgbImage& image, double nuclei_threshold) {
  const StainDensities s = deconvolve_he(image);
  const int w = image.width, h = image.height;
  std::vector<std::uint8_t> labels(std::size_t(w) * h, 0), nuclei(labels.size(), 0);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::uint8_t* p = &image.pixels[i * 3];
    const double od_mean = -std::log10(std::max(1.0, (p[0] + p[1] + p[2]) / 3.0) / 255.0);
    // Glass is bright and grey: little optical density and little saturation.
    const bool tissue = saturation(p) >= 0.08f || od_mean >= 0.2;
    labels[i] = tissue ? 1 : 0;
    nuclei[i] = tissue && s.haematoxylin[i] >= nuclei_threshold ? 1 : 0;
  }
  // An opening removes haematoxylin specks smaller than a nucleus (1 pixel radius at ~1 um/px).
  morph(nuclei, w, h, 1, false);
  morph(nuclei, w, h, 1, true);
  for (std::size_t i = 0; i < labels.size(); ++i)
    if (nuclei[i] && labels[i]) labels[i] = 2;
  return labels;
}

}  // namespace sagitta::segmentation::wsi

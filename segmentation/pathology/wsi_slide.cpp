// Whole-slide reading through OpenSlide: levels, resolution, objective power, region reads.
#include <fmt/format.h>
#include <openslide.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/wsi.h"
#include "wsi_internal.h"

namespace sagitta::segmentation::wsi {
namespace fs = std::filesystem;

namespace {

std::optional<double> number_property(openslide_t* osr, const char* name) {
  const char* v = openslide_get_property_value(osr, name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const double d = std::strtod(v, &end);
  if (end == v || !std::isfinite(d) || d <= 0) return std::nullopt;
  return d;
}

}  // namespace

struct Slide::Impl {
  openslide_t* osr = nullptr;
  SlideInfo info;
  ~Impl() {
    if (osr) openslide_close(osr);
  }
};

Slide::Slide(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Slide::Slide(Slide&&) noexcept = default;
Slide& Slide::operator=(Slide&&) noexcept = default;
Slide::~Slide() = default;

const SlideInfo& Slide::info() const { return impl_->info; }

Slide Slide::open(const fs::path& path) {
  const std::string where = "slide " + path.string();
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw SegmentationError(where + ": file not found");
  // detect_vendor is cheap and tells "not a slide" apart from "a slide OpenSlide failed to read".
  const char* vendor = openslide_detect_vendor(path.c_str());
  if (!vendor)
    throw SegmentationError(where +
                            ": not a whole-slide image OpenSlide recognises (a plain or striped TIFF, or another "
                            "format); convert it to a tiled pyramidal TIFF, e.g. vips tiffsave --tile --pyramid");
  auto impl = std::make_unique<Impl>();
  impl->osr = openslide_open(path.c_str());
  if (!impl->osr) throw SegmentationError(where + ": OpenSlide could not open it (" + vendor + " format)");
  if (const char* err = openslide_get_error(impl->osr))
    throw SegmentationError(where + ": damaged or unsupported " + vendor + " slide: " + err);
  SlideInfo& info = impl->info;
  info.path = path;
  info.vendor = vendor;
  const int32_t count = openslide_get_level_count(impl->osr);
  for (int32_t l = 0; l < count; ++l) {
    Level level;
    openslide_get_level_dimensions(impl->osr, l, &level.width, &level.height);
    level.downsample = openslide_get_level_downsample(impl->osr, l);
    if (level.width <= 0 || level.height <= 0 || !(level.downsample > 0))
      throw SegmentationError(fmt::format("{}: level {} has no valid size ({})", where, l,
                                          openslide_get_error(impl->osr) ? openslide_get_error(impl->osr) : "?"));
    info.levels.push_back(level);
  }
  if (info.levels.empty()) throw SegmentationError(where + ": the slide has no levels");
  info.mpp_x = number_property(impl->osr, OPENSLIDE_PROPERTY_NAME_MPP_X);
  info.mpp_y = number_property(impl->osr, OPENSLIDE_PROPERTY_NAME_MPP_Y);
  if (info.mpp_x && !info.mpp_y) info.mpp_y = info.mpp_x;
  info.objective_power = number_property(impl->osr, OPENSLIDE_PROPERTY_NAME_OBJECTIVE_POWER);
  return Slide(std::move(impl));
}

int Slide::best_level(double downsample) const {
  int best = 0;
  const auto& levels = impl_->info.levels;
  for (int l = 0; l < int(levels.size()); ++l)
    if (levels[std::size_t(l)].downsample <= downsample * (1 + 1e-3) &&
        levels[std::size_t(l)].downsample > levels[std::size_t(best)].downsample)
      best = l;
  return best;
}

RgbImage Slide::read_region(int level, std::int64_t x, std::int64_t y, int width, int height) const {
  if (level < 0 || level >= int(impl_->info.levels.size()))
    throw SegmentationError(fmt::format("slide {}: no level {}", impl_->info.path.string(), level));
  if (width <= 0 || height <= 0) return {std::max(0, width), std::max(0, height), {}};
  const double ds = impl_->info.levels[std::size_t(level)].downsample;
  std::vector<std::uint32_t> argb(std::size_t(width) * std::size_t(height));
  // OpenSlide takes the top-left corner in level-0 coordinates.
  openslide_read_region(impl_->osr, argb.data(), std::int64_t(std::llround(double(x) * ds)),
                        std::int64_t(std::llround(double(y) * ds)), level, width, height);
  if (const char* err = openslide_get_error(impl_->osr))
    throw SegmentationError(fmt::format("slide {}: level {} cannot be read: {}", impl_->info.path.string(), level, err));
  RgbImage out{width, height, std::vector<std::uint8_t>(argb.size() * 3)};
  std::uint8_t* p = out.pixels.data();
  for (const std::uint32_t v : argb) {
    // Premultiplied ARGB: blend onto white, so transparent (outside the scanned area) is glass.
    const std::uint32_t a = v >> 24;
    const std::uint32_t r = (v >> 16) & 0xff, g = (v >> 8) & 0xff, b = v & 0xff;
    if (a == 255) {
      p[0] = std::uint8_t(r), p[1] = std::uint8_t(g), p[2] = std::uint8_t(b);
    } else {
      const std::uint32_t white = 255 - a;
      p[0] = std::uint8_t(std::min<std::uint32_t>(255, r + white));
      p[1] = std::uint8_t(std::min<std::uint32_t>(255, g + white));
      p[2] = std::uint8_t(std::min<std::uint32_t>(255, b + white));
    }
    p += 3;
  }
  return out;
}

namespace detail {

Taps make_taps(double origin, double r, int n) {
  Taps t;
  const double s = std::max(1.0, r);
  t.max_taps = int(std::ceil(2 * s)) + 1;
  t.begin = int(std::floor(origin - s));
  t.end = int(std::ceil(origin + double(n - 1) * r + s)) + 1;
  t.first.resize(std::size_t(n));
  t.count.resize(std::size_t(n));
  t.weights.assign(std::size_t(n) * std::size_t(t.max_taps), 0.0f);
  for (int u = 0; u < n; ++u) {
    const double c = origin + double(u) * r;
    const int k0 = int(std::ceil(c - s)), k1 = int(std::floor(c + s));
    double sum = 0;
    int used = 0;
    t.first[std::size_t(u)] = k0 - t.begin;
    for (int k = k0; k <= k1 && used < t.max_taps; ++k, ++used) {
      const double w = std::max(0.0, 1.0 - std::abs(double(k) - c) / s);
      t.weights[std::size_t(u) * std::size_t(t.max_taps) + std::size_t(used)] = float(w);
      sum += w;
    }
    t.count[std::size_t(u)] = used;
    for (int k = 0; k < used; ++k) t.weights[std::size_t(u) * std::size_t(t.max_taps) + std::size_t(k)] /= float(sum);
  }
  return t;
}

std::vector<float> resample_region(const Slide& slide, int level, double r, int ox, int oy, int w, int h) {
  // Pixel centres: output pixel x covers level pixels [x r, (x + 1) r), centre (x + 0.5) r - 0.5.
  const Taps tx = make_taps((ox + 0.5) * r - 0.5, r, w), ty = make_taps((oy + 0.5) * r - 0.5, r, h);
  const int rw = tx.end - tx.begin, rh = ty.end - ty.begin;
  const RgbImage region = slide.read_region(level, tx.begin, ty.begin, rw, rh);
  std::vector<float> horizontal(std::size_t(rh) * std::size_t(w) * 3);
  for (int y = 0; y < rh; ++y)
    for (int u = 0; u < w; ++u) {
      float acc[3] = {0, 0, 0};
      const float* wt = &tx.weights[std::size_t(u) * std::size_t(tx.max_taps)];
      const std::uint8_t* p = &region.pixels[(std::size_t(y) * std::size_t(rw) + std::size_t(tx.first[std::size_t(u)])) * 3];
      for (int k = 0; k < tx.count[std::size_t(u)]; ++k, p += 3)
        acc[0] += wt[k] * p[0], acc[1] += wt[k] * p[1], acc[2] += wt[k] * p[2];
      float* o = &horizontal[(std::size_t(y) * std::size_t(w) + std::size_t(u)) * 3];
      o[0] = acc[0], o[1] = acc[1], o[2] = acc[2];
    }
  std::vector<float> out(std::size_t(w) * std::size_t(h) * 3);
  for (int v = 0; v < h; ++v) {
    const float* wt = &ty.weights[std::size_t(v) * std::size_t(ty.max_taps)];
    for (int u = 0; u < w; ++u) {
      float acc[3] = {0, 0, 0};
      for (int k = 0; k < ty.count[std::size_t(v)]; ++k) {
        const float* p = &horizontal[((std::size_t(ty.first[std::size_t(v)]) + std::size_t(k)) * std::size_t(w) + std::size_t(u)) * 3];
        acc[0] += wt[k] * p[0], acc[1] += wt[k] * p[1], acc[2] += wt[k] * p[2];
      }
      float* o = &out[(std::size_t(v) * std::size_t(w) + std::size_t(u)) * 3];
      o[0] = acc[0], o[1] = acc[1], o[2] = acc[2];
    }
  }
  return out;
}

}  // namespace detail

}  // namespace sagitta::segmentation::wsi

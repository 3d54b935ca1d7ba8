// Colour map definitions (see sagitta/core/colormap.h).
#include "sagitta/core/colormap.h"

#include <algorithm>
#include <cmath>

namespace sagitta {
namespace {

using Rgb = std::array<double, 3>;

// Perceptually uniform maps as nine anchors at k/8 of matplotlib's published inferno and viridis
// (0..255), linearly interpolated: close enough to the 256-entry tables for overlays (a few
// levels at most) without carrying them.
constexpr Rgb kInferno[9] = {{0, 0, 4},      {31, 12, 72},   {85, 15, 109},  {136, 34, 106}, {186, 54, 85},
                             {227, 89, 51},  {249, 140, 10}, {249, 201, 50}, {252, 255, 164}};
constexpr Rgb kViridis[9] = {{68, 1, 84},    {71, 44, 122},  {59, 82, 139},  {44, 114, 142}, {33, 145, 140},
                             {40, 174, 128}, {94, 201, 98},  {173, 220, 48}, {253, 231, 37}};

Rgb from_anchors(const Rgb (&anchors)[9], double t) {
  const double x = t * 8;
  const int i = std::min(7, int(std::floor(x)));
  const double f = x - i;
  Rgb c{};
  for (int k = 0; k < 3; ++k) c[std::size_t(k)] = (anchors[i][k] * (1 - f) + anchors[i + 1][k] * f) / 255.0;
  return c;
}

// Black-body "hot": dark red -> red -> yellow -> white, piecewise linear.
Rgb hot(double t) {
  using Stop = std::array<double, 4>;  // t, r, g, b
  static constexpr Stop stops[] = {{0, 0.3, 0, 0}, {0.4, 1, 0, 0}, {0.75, 1, 1, 0}, {1, 1, 1, 1}};
  for (std::size_t i = 1; i < std::size(stops); ++i) {
    if (t <= stops[i][0]) {
      const double f = (t - stops[i - 1][0]) / (stops[i][0] - stops[i - 1][0]);
      return {stops[i - 1][1] + f * (stops[i][1] - stops[i - 1][1]), stops[i - 1][2] + f * (stops[i][2] - stops[i - 1][2]),
              stops[i - 1][3] + f * (stops[i][3] - stops[i - 1][3])};
    }
  }
  return {1, 1, 1};
}

double unit(double v) { return std::clamp(v, 0.0, 1.0); }

}  // namespace

std::optional<ColorMap> parse_colormap(const std::string& name) {
  if (name == "hot") return ColorMap::Hot;
  if (name == "jet") return ColorMap::Jet;
  if (name == "inferno") return ColorMap::Inferno;
  if (name == "viridis") return ColorMap::Viridis;
  return std::nullopt;
}

std::string colormap_name(ColorMap map) {
  switch (map) {
    case ColorMap::Hot: return "hot";
    case ColorMap::Jet: return "jet";
    case ColorMap::Inferno: return "inferno";
    case ColorMap::Viridis: return "viridis";
  }
  return "?";
}

std::array<double, 3> colour_rgb(ColorMap map, double t) {
  t = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
  switch (map) {
    case ColorMap::Hot: return hot(t);
    case ColorMap::Jet:
      // Dark blue -> blue -> cyan -> yellow -> red -> dark red, each channel a clipped tent.
      return {unit(1.5 - std::abs(4 * t - 3)), unit(1.5 - std::abs(4 * t - 2)), unit(1.5 - std::abs(4 * t - 1))};
    case ColorMap::Inferno: return from_anchors(kInferno, t);
    case ColorMap::Viridis: return from_anchors(kViridis, t);
  }
  return {0, 0, 0};
}

std::array<unsigned char, 3> colour(ColorMap map, double t) {
  const auto c = colour_rgb(map, t);
  return {static_cast<unsigned char>(std::lround(c[0] * 255)), static_cast<unsigned char>(std::lround(c[1] * 255)),
          static_cast<unsigned char>(std::lround(c[2] * 255))};
}

}  // namespace sagitta

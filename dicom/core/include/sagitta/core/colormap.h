#pragma once
// The colour maps every picture uses (heatmaps in the viewer, in report overlays and montages):
// one definition each, so a heatmap looks the same wherever it is drawn.
#include <array>
#include <optional>
#include <string>

namespace sagitta {

enum class ColorMap { Hot, Jet, Inferno, Viridis };

std::optional<ColorMap> parse_colormap(const std::string& name);  // "hot", "jet", "inferno", "viridis"
std::string colormap_name(ColorMap map);
// The colour of t in [0, 1] (clamped; NaN counts as 0): RGB in 0..1, and as 8-bit RGB.
std::array<double, 3> colour_rgb(ColorMap map, double t);
std::array<unsigned char, 3> colour(ColorMap map, double t);

}  // namespace sagitta

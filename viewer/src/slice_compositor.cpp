// Composes one slice's RGB picture from the resliced volume, labels and heatmap: window/level grey,
// then labels (fill or outline) and the heatmap alpha-blended on top (the declarations and their
// contract: slice_compositor.h).
#include "slice_compositor.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace sagitta::viewer {

void compose_slice(const SliceLayers& l, const Scene& scene, std::uint8_t* rgb) {
  const DisplaySettings& d = scene.display;
  const double lo = d.window.level - d.window.window / 2;
  const double scale = 255.0 / std::max(d.window.window, 1e-9);
  const std::size_t n = static_cast<std::size_t>(l.width) * static_cast<std::size_t>(l.height);

  for (std::size_t i = 0; i < n; ++i) {
    const double value = l.volume[i];
    // NaN marks pixels outside the volume (the reslice background): black.
    const double g = std::isnan(value) ? 0.0 : std::clamp((value - lo) * scale, 0.0, 255.0);
    const auto v = static_cast<std::uint8_t>(g + 0.5);
    rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = v;
  }

  auto blend = [rgb](std::size_t i, const std::array<double, 3>& c, double a) {
    for (int k = 0; k < 3; ++k) {
      const double out = (1 - a) * rgb[3 * i + k] + a * 255.0 * c[k];
      rgb[3 * i + k] = static_cast<std::uint8_t>(std::clamp(out + 0.5, 0.0, 255.0));
    }
  };

  if (l.heatmap && d.heatmap.visible && d.heatmap.opacity > 0) {
    const double top = d.heatmap.maximum > 0 ? d.heatmap.maximum : scene.heatmap_max();
    const double span = std::max(top - d.heatmap.threshold, 1e-9);
    for (std::size_t i = 0; i < n; ++i) {
      const double h = l.heatmap[i];
      if (!(h >= d.heatmap.threshold) || h <= 0) continue;
      blend(i, sagitta::colour_rgb(d.heatmap.colormap, std::clamp((h - d.heatmap.threshold) / span, 0.0, 1.0)),
            d.heatmap.opacity);
    }
  }

  if (l.labels && d.labels_visible && d.label_opacity > 0) {
    // Per-value lookup of colour and alpha, so the pixel loop does no map searches.
    std::vector<std::array<double, 4>> lut(static_cast<std::size_t>(scene.max_label()) + 1, {0, 0, 0, 0});
    for (const auto& [value, style] : scene.label_table.styles())
      if (value > 0 && value <= scene.max_label() && style.visible)
        lut[static_cast<std::size_t>(value)] = {style.color[0], style.color[1], style.color[2],
                                                std::clamp(style.opacity * d.label_opacity, 0.0, 1.0)};
    const int w = l.width, h = l.height;
    for (int y = 0; y < h; ++y) {
      for (int x = 0; x < w; ++x) {
        const std::size_t i = static_cast<std::size_t>(y) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x);
        const std::uint16_t v = l.labels[i];
        if (v == 0 || v >= lut.size()) continue;
        const auto& c = lut[v];
        if (c[3] <= 0) continue;
        if (d.label_outline) {
          // Boundary pixels only (a 4-neighbour with another value, or the picture's edge); drawn
          // opaque so thin outlines stay visible.
          const bool edge = x == 0 || y == 0 || x == w - 1 || y == h - 1 || l.labels[i - 1] != v ||
                            l.labels[i + 1] != v || l.labels[i - static_cast<std::size_t>(w)] != v ||
                            l.labels[i + static_cast<std::size_t>(w)] != v;
          if (edge) blend(i, {c[0], c[1], c[2]}, 1.0);
        } else {
          blend(i, {c[0], c[1], c[2]}, c[3]);
        }
      }
    }
  }
}

}  // namespace sagitta::viewer

#pragma once
// Heatmap pictures for reports: a heatmap blended over a
// window/levelled slice with opacity and threshold, the most salient slices, montages, PNG files
// (ITK's PNG writer: explain sits beside the viewer, not above it).
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <itkImage.h>
#include <itkRGBPixel.h>

#include "sagitta/core/colormap.h"
#include "sagitta/core/image.h"

namespace sagitta::explain {

// The colour maps are the floor's, shared with the viewer.
using sagitta::ColorMap;
using sagitta::colormap_name;
using sagitta::colour;
using sagitta::parse_colormap;

using RgbImage = itk::Image<itk::RGBPixel<unsigned char>, 2>;

struct OverlayOptions {
  ColorMap map = ColorMap::Jet;
  double opacity = 0.5;    // of the colour over the grey slice, where the heatmap >= threshold
  double threshold = 0.2;  // heatmap values below are not coloured
  double window = 400, level = 40;  // grey scale of the slice (CT soft tissue by default)
  bool outline = true;     // the target's outline in white
};

// Window and level from the 1st and 99th percentiles of a volume (non-CT data).
std::array<double, 2> auto_window_level(const Image& volume);

// Axial slice z (third index axis) of `volume` with `heatmap` (same grid) blended over it; x to
// the right, y down, as the index grid is stored (radiological display for LPS-aligned volumes).
RgbImage::Pointer overlay_slice(const Image& volume, const Image& heatmap,
                                const LabelImage* target, int z, const OverlayOptions& options);

// The `count` axial slices with the largest heatmap sums, in increasing slice order.
std::vector<int> salient_slices(const Image& heatmap, int count);

// Tiles side by side, `columns` per row, separated by `gap` black pixels.
RgbImage::Pointer montage(const std::vector<RgbImage::Pointer>& tiles, int columns, int gap = 4);

// Writes a PNG atomically (temporary name, then rename). Throws ExplainError.
void write_png(const RgbImage& image, const std::filesystem::path& path);

}  // namespace sagitta::explain

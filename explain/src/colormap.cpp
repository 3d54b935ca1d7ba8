// Slice overlays, montages and PNG output (ITK); the colour maps are the floor's (sagitta/core/colormap.h).
#include "sagitta/explain/colormap.h"

#include <fmt/format.h>
#include <itkImageFileWriter.h>
#include <itkPNGImageIO.h>

#include <algorithm>
#include <cmath>

#include "sagitta/core/atomic_output.h"
#include "sagitta/explain/error.h"

namespace sagitta::explain {

std::array<double, 2> auto_window_level(const Image& volume) {
  const float* p = volume.GetBufferPointer();
  std::vector<float> v(p, p + volume.GetBufferedRegion().GetNumberOfPixels());
  if (v.empty()) return {1, 0};
  const auto lo = v.begin() + std::ptrdiff_t(double(v.size() - 1) * 0.01);
  std::nth_element(v.begin(), lo, v.end());
  const double low = *lo;
  const auto hi = v.begin() + std::ptrdiff_t(double(v.size() - 1) * 0.99);
  std::nth_element(v.begin(), hi, v.end());
  const double high = *hi;
  return {std::max(1e-6, high - low), (high + low) / 2};
}

RgbImage::Pointer overlay_slice(const Image& volume, const Image& heatmap,
                                const LabelImage* target, int z, const OverlayOptions& o) {
  const auto size = volume.GetLargestPossibleRegion().GetSize();
  if (heatmap.GetLargestPossibleRegion().GetSize() != size || z < 0 || z >= int(size[2]))
    throw ExplainError("overlay: the heatmap is not on the volume's grid or the slice is outside it");
  auto out = RgbImage::New();
  RgbImage::RegionType region;
  region.SetSize(0, size[0]);
  region.SetSize(1, size[1]);
  out->SetRegions(region);
  RgbImage::SpacingType spacing;
  spacing[0] = volume.GetSpacing()[0], spacing[1] = volume.GetSpacing()[1];
  out->SetSpacing(spacing);
  out->Allocate();
  const std::size_t plane = size[0] * size[1], offset = plane * std::size_t(z);
  const float* v = volume.GetBufferPointer() + offset;
  const float* h = heatmap.GetBufferPointer() + offset;
  const auto* m = target ? target->GetBufferPointer() + offset : nullptr;
  auto* px = out->GetBufferPointer();
  const double low = o.level - o.window / 2;
  for (std::size_t y = 0; y < size[1]; ++y)
    for (std::size_t x = 0; x < size[0]; ++x) {
      const std::size_t i = y * size[0] + x;
      const double g = std::clamp((double(v[i]) - low) / o.window, 0.0, 1.0) * 255;
      double rgb[3] = {g, g, g};
      if (h[i] >= o.threshold && h[i] > 0) {
        const auto c = colour(o.map, h[i]);
        for (int k = 0; k < 3; ++k) rgb[k] = (1 - o.opacity) * rgb[k] + o.opacity * c[std::size_t(k)];
      }
      if (m && o.outline && m[i]) {
        // A target voxel with a 4-neighbour outside the target (or at the border) is on its outline.
        const bool edge = x == 0 || y == 0 || x + 1 == size[0] || y + 1 == size[1] || !m[i - 1] || !m[i + 1] ||
                          !m[i - size[0]] || !m[i + size[0]];
        if (edge) rgb[0] = rgb[1] = rgb[2] = 255;
      }
      for (int k = 0; k < 3; ++k) px[i][unsigned(k)] = static_cast<unsigned char>(std::lround(std::clamp(rgb[k], 0.0, 255.0)));
    }
  return out;
}

std::vector<int> salient_slices(const Image& heatmap, int count) {
  const auto size = heatmap.GetLargestPossibleRegion().GetSize();
  const std::size_t plane = size[0] * size[1];
  std::vector<std::pair<double, int>> sums;
  for (std::size_t z = 0; z < size[2]; ++z) {
    const float* p = heatmap.GetBufferPointer() + plane * z;
    double s = 0;
    for (std::size_t i = 0; i < plane; ++i) s += p[i];
    sums.emplace_back(s, int(z));
  }
  std::stable_sort(sums.begin(), sums.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int> out;
  for (const auto& [s, z] : sums)
    if (int(out.size()) < count && s > 0) out.push_back(z);
  if (out.empty() && !sums.empty()) out.push_back(sums.front().second);
  std::sort(out.begin(), out.end());
  return out;
}

RgbImage::Pointer montage(const std::vector<RgbImage::Pointer>& tiles, int columns, int gap) {
  if (tiles.empty()) throw ExplainError("montage: no tiles");
  columns = std::max(1, std::min(columns, int(tiles.size())));
  const int rows = (int(tiles.size()) + columns - 1) / columns;
  long tw = 0, th = 0;
  for (const auto& t : tiles) {
    tw = std::max<long>(tw, long(t->GetLargestPossibleRegion().GetSize(0)));
    th = std::max<long>(th, long(t->GetLargestPossibleRegion().GetSize(1)));
  }
  auto out = RgbImage::New();
  RgbImage::RegionType region;
  region.SetSize(0, itk::SizeValueType(columns * tw + (columns - 1) * gap));
  region.SetSize(1, itk::SizeValueType(rows * th + (rows - 1) * gap));
  out->SetRegions(region);
  out->Allocate();
  RgbImage::PixelType black;
  black.Fill(0);
  out->FillBuffer(black);
  const long width = long(region.GetSize(0));
  for (std::size_t n = 0; n < tiles.size(); ++n) {
    const auto s = tiles[n]->GetLargestPossibleRegion().GetSize();
    const long ox = long(n % std::size_t(columns)) * (tw + gap), oy = long(n / std::size_t(columns)) * (th + gap);
    for (long y = 0; y < long(s[1]); ++y)
      std::copy_n(tiles[n]->GetBufferPointer() + y * long(s[0]), s[0], out->GetBufferPointer() + (oy + y) * width + ox);
  }
  return out;
}

void write_png(const RgbImage& image, const std::filesystem::path& path) {
  try {
    write_atomically(path, [&](const std::filesystem::path& tmp) {
      auto writer = itk::ImageFileWriter<RgbImage>::New();
      writer->SetImageIO(itk::PNGImageIO::New());
      writer->SetFileName(tmp.string());
      writer->SetInput(&image);
      writer->Update();
    });
  } catch (const std::exception& e) {
    throw ExplainError(path.string() + ": cannot write the PNG (" + std::string(e.what()).substr(0, 200) + ")");
  }
}

}  // namespace sagitta::explain

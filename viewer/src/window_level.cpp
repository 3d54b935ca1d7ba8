// Window/level: CT presets and automatic windows from intensity percentiles (MR, PET, anything
// without calibrated units) (the declarations and their contract: sagitta/viewer/window_level.h).
#include "sagitta/viewer/window_level.h"

#include <algorithm>
#include <cmath>

namespace sagitta::viewer {

const std::vector<WindowLevel>& ct_presets() {
  static const std::vector<WindowLevel> presets{
      {80, 40, "brain"}, {400, 40, "soft-tissue"}, {1500, -600, "lung"}, {1800, 400, "bone"}};
  return presets;
}

std::optional<WindowLevel> find_preset(const std::string& name) {
  const std::string n = name == "soft" ? "soft-tissue" : name;
  for (const auto& p : ct_presets())
    if (p.name == n) return p;
  return std::nullopt;
}

WindowLevel auto_window(const Image* volume, double low_percentile, double high_percentile) {
  const auto size = volume->GetLargestPossibleRegion().GetSize();
  const std::size_t n = size[0] * size[1] * size[2];
  // A stride coprime with the row length samples every region of the volume evenly.
  std::size_t stride = std::max<std::size_t>(1, n / 1000000);
  if (stride > 1 && size[0] % stride == 0) ++stride;
  std::vector<float> sample;
  sample.reserve(n / stride + 1);
  const float* p = volume->GetBufferPointer();
  for (std::size_t i = 0; i < n; i += stride)
    if (std::isfinite(p[i])) sample.push_back(p[i]);
  WindowLevel wl;
  wl.name = "auto";
  if (sample.empty()) return wl;
  auto at = [&](double pct) {
    const auto k = static_cast<std::size_t>(std::clamp(pct / 100.0, 0.0, 1.0) * double(sample.size() - 1));
    std::nth_element(sample.begin(), sample.begin() + static_cast<std::ptrdiff_t>(k), sample.end());
    return double(sample[k]);
  };
  const double lo = at(low_percentile), hi = at(high_percentile);
  wl.window = std::max(hi - lo, 1e-6);
  wl.level = (lo + hi) / 2;
  return wl;
}

WindowLevel default_window(const Image* volume, const std::string& modality) {
  if (modality == "CT") return *find_preset("soft-tissue");
  if (modality.empty()) {
    // Without a modality: values down to air (-1000 HU) mean CT.
    const WindowLevel wl = auto_window(volume, 0.5, 99.5);
    if (wl.level - wl.window / 2 <= -900) return *find_preset("soft-tissue");
    return auto_window(volume);
  }
  return auto_window(volume);
}

}  // namespace sagitta::viewer

#pragma once
// Window/level: CT presets and automatic windows from intensity percentiles (MR, PET, anything
// without calibrated units).
#include <optional>
#include <string>
#include <vector>

#include "sagitta/viewer/overlays.h"

namespace sagitta::viewer {

struct WindowLevel {
  double window = 400, level = 40;
  std::string name = "soft-tissue";  // preset name, "auto" or "custom"
};

// The CT presets: brain 80/40, soft-tissue 400/40, lung 1500/-600, bone 1800/400.
const std::vector<WindowLevel>& ct_presets();
// A preset by name (also "soft" for soft-tissue); nullopt when unknown.
std::optional<WindowLevel> find_preset(const std::string& name);

// Window from the [low, high] percentiles (0..100) of the volume's intensities, sampled on a
// regular subgrid of at most ~1M voxels.
WindowLevel auto_window(const Image* volume, double low_percentile = 1.0, double high_percentile = 99.0);

// The default for a volume: soft tissue for CT (modality CT, or intensities that look like HU),
// automatic percentiles otherwise.
WindowLevel default_window(const Image* volume, const std::string& modality);

}  // namespace sagitta::viewer

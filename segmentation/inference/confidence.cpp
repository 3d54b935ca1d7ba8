// Per-structure confidence (the declarations and their contract: confidence.h).
#include "confidence.h"

#include <cmath>
#include <limits>
#include <map>

namespace sagitta::segmentation::detail {

std::vector<StructureConfidence> structure_confidence(const std::uint16_t* labels, const float* top,
                                                      const float* entropy, std::array<std::size_t, 3> size,
                                                      const ModelCard& card, const float* tta_disagreement,
                                                      const float* fold_disagreement) {
  struct Sums {
    std::size_t n = 0, border = 0;
    double p = 0, h = 0, border_p = 0, border_h = 0, tta = 0, folds = 0;
  };
  std::map<int, Sums> sums;
  const std::size_t nx = size[0], ny = size[1], nz = size[2], plane = nx * ny;
  for (std::size_t z = 0; z < nz; ++z)
    for (std::size_t y = 0; y < ny; ++y)
      for (std::size_t x = 0; x < nx; ++x) {
        const std::size_t i = z * plane + y * nx + x;
        const std::uint16_t l = labels[i];
        if (l == 0) continue;
        Sums& s = sums[l];
        ++s.n;
        s.p += top[i];
        s.h += entropy[i];
        if (tta_disagreement) s.tta += tta_disagreement[i];
        if (fold_disagreement) s.folds += fold_disagreement[i];
        // A border voxel has a 6-neighbour inside the grid with another label.
        const bool border = (x > 0 && labels[i - 1] != l) || (x + 1 < nx && labels[i + 1] != l) ||
                            (y > 0 && labels[i - nx] != l) || (y + 1 < ny && labels[i + nx] != l) ||
                            (z > 0 && labels[i - plane] != l) || (z + 1 < nz && labels[i + plane] != l);
        if (border) {
          ++s.border;
          s.border_p += top[i];
          s.border_h += entropy[i];
        }
      }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<StructureConfidence> out;
  for (const auto& label : card.labels) {
    if (label.value == 0) continue;
    StructureConfidence c;
    c.value = label.value;
    c.name = label.name;
    const auto it = sums.find(label.value);
    const Sums s = it == sums.end() ? Sums{} : it->second;
    c.voxels = s.n;
    c.border_voxels = s.border;
    c.mean_probability = s.n ? s.p / double(s.n) : nan;
    c.mean_entropy = s.n ? s.h / double(s.n) : nan;
    c.border_probability = s.border ? s.border_p / double(s.border) : nan;
    c.border_entropy = s.border ? s.border_h / double(s.border) : nan;
    if (tta_disagreement) c.tta_disagreement = s.n ? s.tta / double(s.n) : nan;
    if (fold_disagreement) c.fold_disagreement = s.n ? s.folds / double(s.n) : nan;
    out.push_back(c);
  }
  return out;
}

nlohmann::json to_json(const StructureConfidence& c) {
  auto number = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
  return {{"value", c.value},
          {"name", c.name},
          {"model_grid_voxels", c.voxels},
          {"border_voxels", c.border_voxels},
          {"mean_probability", number(c.mean_probability)},
          {"mean_entropy", number(c.mean_entropy)},
          {"border_probability", number(c.border_probability)},
          {"border_entropy", number(c.border_entropy)},
          {"tta_disagreement", c.tta_disagreement ? number(*c.tta_disagreement) : nlohmann::json(nullptr)},
          {"fold_disagreement", c.fold_disagreement ? number(*c.fold_disagreement) : nlohmann::json(nullptr)}};
}

}  // namespace sagitta::segmentation::detail

#pragma once
// Per-structure confidence from per-voxel maps (segment.h's StructureConfidence). No LibTorch, no
// ITK: raw buffers, x fastest.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sagitta/segmentation/segment.h"

namespace sagitta::segmentation::detail {

// `labels`, `top`, `entropy` and (when given) the mirrored passes' and the folds' disagreement hold
// size[0] x size[1] x size[2] voxels (x fastest). One entry per card label except the background,
// in card order.
std::vector<StructureConfidence> structure_confidence(const std::uint16_t* labels, const float* top,
                                                      const float* entropy, std::array<std::size_t, 3> size,
                                                      const ModelCard& card, const float* tta_disagreement = nullptr,
                                                      const float* fold_disagreement = nullptr);

nlohmann::json to_json(const StructureConfidence& c);

}  // namespace sagitta::segmentation::detail

#pragma once
// Composes one slice's RGB picture from the resliced volume, labels and heatmap: window/level
// grey, then labels (fill or outline) and the heatmap alpha-blended on top. Done on the CPU in
// one pass because it is cheaper than three textured actors and keeps blending exact.
#include <cstdint>

#include "sagitta/viewer/scene.h"

namespace sagitta::viewer {

struct SliceLayers {
  int width = 0, height = 0;
  const float* volume = nullptr;          // width*height, row 0 at the bottom; NaN: outside
  const std::uint16_t* labels = nullptr;  // may be null
  const float* heatmap = nullptr;         // may be null
};

// Writes width*height RGB triplets into `rgb`.
void compose_slice(const SliceLayers& layers, const Scene& scene, std::uint8_t* rgb);

}  // namespace sagitta::viewer

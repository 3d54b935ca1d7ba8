#pragma once
// Shared by the whole-slide sources (inference and the demo model's training): the one resampling
// of slide regions onto the model's grid, so training and inference see the same pixels.
#include <vector>

#include "sagitta/segmentation/wsi.h"

namespace sagitta::segmentation::wsi::detail {

// Separable linear-filter taps for resampling one axis: output pixel u has its centre at source
// coordinate origin + u * r; a triangle of half-width max(1, r) averages every source pixel it
// covers when downsampling (no aliasing) and interpolates linearly when upsampling.
struct Taps {
  std::vector<int> first, count;  // per output pixel, relative to `begin`
  std::vector<float> weights;     // per output pixel, `max_taps` entries
  int begin = 0, end = 0, max_taps = 0;
};
Taps make_taps(double origin, double r, int n);

// The w x h pixels of the output grid starting at output pixel (ox, oy), where one output pixel is
// r pixels of `level`: interleaved RGB floats in 0..255 (outside the slide: white).
std::vector<float> resample_region(const Slide& slide, int level, double r, int ox, int oy, int w, int h);

}  // namespace sagitta::segmentation::wsi::detail

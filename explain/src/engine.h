#pragma once
// The sliding-window engine shared by every explanation method (torch-free interface; the torch
// side is engine.cpp). One pass over the windows gives, per window: the logits (for the
// segmentation), the map of each requested label, and optionally the predictive entropy. Maps
// are blended with the segmentation's Gaussian weights over the windows whose target is not empty.
#include <functional>
#include <string>
#include <vector>

#include "sagitta/explain/explain.h"

namespace sagitta::explain::detail {

struct EngineRequest {
  std::vector<int> labels;  // label values to explain; empty: logits (and entropy) only
  Method method = Method::GradCam;
  ScoreReduction score = ScoreReduction::Sum;
  // Model-grid region: null = each window's own argmax; else when `region_is_label_map` the
  // target of label k is region == k, otherwise region != 0 for every label.
  const LabelImage* region = nullptr;
  bool region_is_label_map = false;
  double overlap = 0.5;
  int batch_size = 1;
  bool mirror = false;       // average logits over flips (as segment --mirror)
  double sigma_scale = 0;  // 0: the card's
  bool uncertainty = false;  // entropy over the flips (+ MC dropout samples)
  int mc_samples = 8;
  bool randomised = false;   // run a copy of the network with re-drawn weights
  unsigned seed = 1;
  int occlusion_size = 0;
  std::function<bool(int, int)> progress;  // (windows done, total); false = cancel
};

struct EngineResult {
  std::vector<Image::Pointer> logits;    // per class, model grid
  std::vector<Image::Pointer> maps;      // per requested label, raw blended map, model grid
  std::vector<long long> target_windows; // per label: windows whose target was not empty
  Image::Pointer entropy;                // normalised entropy, model grid (when asked)
  int windows = 0, forward_passes = 0, backward_passes = 0;
  double seconds = 0;
  std::vector<std::string> decisions;
};

EngineResult run_windows(const segmentation::Model& model, const std::vector<Image::Pointer>& channels,
                         const EngineRequest& request);

// Deletion curve on the windows with the largest target of `label`: voxels removed (set to each
// channel's minimum, the background windows are padded with) in decreasing `heatmap` order, and
// in random order for reference.
DeletionCurve deletion_curve(const segmentation::Model& model, const std::vector<Image::Pointer>& channels,
                             const Image& heatmap, const LabelImage& target, int label, int windows, int steps,
                             double overlap, unsigned seed);

// The raw map of one patch (see explain_patch in explain.h).
std::vector<float> explain_patch_raw(const segmentation::Model& model, const std::vector<float>& input,
                                     const std::vector<std::int64_t>& shape, int label, Method method, ScoreReduction score,
                                     const std::vector<std::uint8_t>& region);

// Does the model have dropout layers that MC dropout can switch on?
bool has_dropout(const segmentation::Model& model);

}  // namespace sagitta::explain::detail

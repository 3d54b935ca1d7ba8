#pragma once
// Sliding-window inference: the model runs on patches of the card's size that overlap, each
// patch's logits are weighted by a Gaussian importance map (centres count more than borders, where
// the network sees less context) and accumulated in tiles that live only while windows still add
// to them, then divided by the accumulated weights. sliding_window() returns the whole volume's
// logits; segment() streams the finished blocks into labels instead, so its memory does not grow
// with the number of classes times the volume.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "sagitta/segmentation/images.h"
#include "sagitta/segmentation/model.h"

namespace sagitta::segmentation {

// Where windows start along an axis: Even (Sagitta's: step floor(patch x (1 - overlap)), starts
// spread evenly and rounded half up), NnUNet (compute_steps_for_sliding_window with tile step
// 1 - overlap: step patch x (1 - overlap) unrounded, starts rounded half to even) or Monai
// (sliding_window_inference: interval int(patch x (1 - overlap)), at least 1, starts k x interval
// until a window reaches the end, the last moved back to end there).
enum class StepRule { Even, NnUNet, Monai };
// How a window's logits are weighted: Sagitta (Gaussian centred at (patch - 1) / 2, peak 1, floored
// at 1e-6), NnUNet (compute_gaussian: a delta at patch // 2 through scipy's gaussian_filter,
// peak 10, rounded to float16, zeros replaced by the smallest value) or Monai
// (compute_importance_map: float32 Gaussians centred at (patch - 1) / 2, not normalised, floored at
// the larger of their minimum and 1e-3).
enum class ImportanceMap { Sagitta, NnUNet, Monai };
// What pads volumes smaller than a patch (centred, as nnU-Net's pad_nd_image): each channel's
// minimum, or 0 (nnU-Net's predictor).
enum class PadRule { ChannelMinimum, Zero };

struct SlidingWindowOptions {
  double overlap = 0.5;         // fraction of the patch shared by neighbouring windows, [0, 0.95]
  int batch_size = 1;           // windows per forward pass
  bool mirror = false;          // test-time augmentation: average over flips of every spatial axis
  double sigma_scale = 0;       // Gaussian sigma as a fraction of the patch size; 0: the card's
  StepRule step_rule = StepRule::Even;
  ImportanceMap importance = ImportanceMap::Sagitta;
  PadRule pad = PadRule::ChannelMinimum;
  // nnU-Net's predictor keeps the weighted sums and the weights in float16 (every addition and
  // the final division rounded to half precision); true does the same, so logits match its own.
  bool half_sums = false;
  // Which of the model's networks runs: -1 all of them, combined as the card's fold_average says;
  // 0 the card's own weights; k its folds[k - 1] (nnU-Net averages folds after the whole window pass).
  int fold = -1;
  // Called after each batch with (windows done, windows total); return false to cancel
  // (sliding_window then throws SegmentationError).
  std::function<bool(int, int)> progress;
};

struct SlidingWindowResult {
  std::vector<Image::Pointer> logits;  // one per class, on the input grid (geometry of channels[0])
  int windows = 0;                     // patches evaluated
  int forward_passes = 0;              // network calls (batches x mirror flips)
  double forward_seconds = 0;          // time inside the network
  double total_seconds = 0;            // everything: extraction, forward, weighting, accumulation
  std::size_t accumulator_peak_bytes = 0;  // the most the open tiles of sums held at once
  std::vector<int> patch;              // x y z patch used (z = 1 for 2D models)
  std::vector<std::string> decisions;  // padding, windows per axis...
};

// `channels` are the model's inputs on one grid (preprocessed). 3D models slide over the volume;
// 2D models run slice by slice (along the third axis), their windows batched across slices.
// Volumes smaller than a patch are padded (options.pad: each channel's minimum, or 0) and cropped back.
SlidingWindowResult sliding_window(const Model& model, const std::vector<Image::Pointer>& channels,
                                   const SlidingWindowOptions& options = {});

// Window start positions along one axis of `size` voxels for `patch` and `overlap`: evenly
// spaced, first at 0, last at size - patch; {0} when size <= patch.
std::vector<int> window_starts(int size, int patch, double overlap);
// The same under `rule` (StepRule::NnUNet: nnunet::sliding_window_steps(size, patch, 1 - overlap)).
std::vector<int> window_starts(int size, int patch, double overlap, StepRule rule);

// The Gaussian importance map sliding_window weights every patch with, for a patch of x y z voxels
// (z = 1 for 2D models), as z y x floats (x fastest), peak 1. Public so that explanations blend
// their per-window heatmaps with exactly the segmentation's weights.
std::vector<float> importance_weights(const std::vector<int>& patch_xyz, double sigma_scale);
// The same under `map` (ImportanceMap::NnUNet: peak 10; 2D models' patches (z = 1) over y x).
std::vector<float> importance_weights(const std::vector<int>& patch_xyz, double sigma_scale, ImportanceMap map);

}  // namespace sagitta::segmentation

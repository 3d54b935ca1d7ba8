#pragma once
// Training cases as tensors on the model grid and what is drawn from them: normalised images,
// patches with spatial and intensity augmentation (one grid_sample per patch), and the
// full-volume prediction used for validation. LibTorch: include from .cpp files only.
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/train.h"
#include "unet.h"
#include "train_data.h"

namespace sagitta::segmentation::detail {

// CT: clip to the 0.5/99.5 percentiles of the foreground intensities and z-score with the
// foreground's mean and std, fixed for every image (HU are absolute, so one set of statistics fits
// all scans and keeps e.g. contrast between organs that per-image z-scoring would blur).
Normalization ct_normalization(const std::vector<CaseData>& cases);

// What lies outside the image, normalised: the darkest intensity (air for CT), as the sliding
// window pads with each channel's minimum.
float pad_value(const Normalization& n);

struct Case {
  torch::Tensor image;   // 1 x 1 x Z x Y x X, normalised, minus the pad value (so zero = outside)
  torch::Tensor labels;  // 1 x 1 x Z x Y x X float (grid_sample input)
  std::vector<std::uint8_t> raw_labels;
  std::array<int, 3> size{};
  std::vector<std::vector<std::int64_t>> foreground;  // per class value: voxel indices
  std::vector<int> present;                           // class values present
};

// Normalises the case's image and checks its label values against the model's classes.
Case make_case(CaseData&& data, const Normalization& n, float pad, int num_classes);

// Draws patches of a fixed size from cases, augmented as the options say.
class Sampler {
 public:
  Sampler(const TrainOptions& options, int dimensions, std::array<int, 3> patch, float pad);
  // One patch: image 1 x [pz x] py x px (channel first), labels [pz x] py x px (int64); centred
  // on a voxel of a present class when `foreground`, anywhere in the case otherwise.
  std::pair<torch::Tensor, torch::Tensor> sample(const Case& c, std::mt19937& rng, bool foreground) const;

 private:
  std::array<double, 3> centre(const Case& c, std::mt19937& rng, bool foreground) const;
  torch::Tensor axes(std::mt19937& rng) const;
  torch::Tensor jitter(torch::Tensor image, std::mt19937& rng) const;

  const TrainOptions& o_;
  int dims_;
  std::array<int, 3> patch_;  // x y z (z = 1 for 2D)
  float pad_;
  torch::Tensor base_;        // P x 3 voxel offsets (x y z) of the patch's voxels from its centre
};

// Full-volume forward (padded to the size divisor with the pad value): the labels, x fastest.
std::vector<std::uint8_t> predict(UNet& net, const torch::Tensor& image_minus_pad, float pad,
                                  const std::array<int, 3>& size);

}  // namespace sagitta::segmentation::detail

#pragma once
// Torch-facing side of Model, for code inside sagitta::segmentation (sliding window) and the
// explain library (logits, activation and gradients). Includes LibTorch.
#include <torch/script.h>

#include <optional>
#include <string>
#include <vector>

#include "sagitta/segmentation/model.h"

namespace sagitta::segmentation {

// LibTorch's intra-op threads for the process (0: all hardware threads); it starts with one on
// these machines. Models and training set it through this one function.
void set_threads(int threads);

struct ModelOutput {
  torch::Tensor logits;      // N x classes x spatial
  torch::Tensor activation;  // the card's Grad-CAM layer, undefined when the model has none
};

struct Model::Impl {
  ModelCard card;
  torch::Device device{torch::kCPU};
  std::vector<std::string> notes;
  int size_divisor = 1;
  // Output channels: the card's classes, or for nnU-Net region-based models the card's
  // unet.num_outputs (one sigmoid channel per region).
  int num_outputs = 0;
  // Exactly one of these is set.
  std::optional<torch::jit::Module> script;
  // A UNet or an NNUNetNetwork (kept opaque here so this header needs neither unet.h nor
  // nnunet_networks.h); native_kind says which.
  std::shared_ptr<void> native;
  enum class NativeKind { None, UNet, NNUNet } native_kind = NativeKind::None;
  // nnU-Net checkpoints: inference_allowed_mirroring_axes as saved by the trainer (nullopt: None)
  // and the trainer's class name.
  std::optional<std::vector<int>> checkpoint_mirroring_axes;
  std::string trainer_name;
  // The card's other folds: the same network with other weights (their cards name their weights).
  std::vector<std::unique_ptr<Impl>> folds;

  // Logits and (when available) the activation. Gradients flow unless the caller disables them
  // (inference paths hold an InferenceMode guard). `x` is on any device; outputs are on `device`.
  // With folds, the logits combine every fold's as the card's fold_average says (the mean of the
  // logits, or logits whose softmax/sigmoid is the mean of the folds' probabilities); the
  // activation is the first fold's.
  ModelOutput run(const torch::Tensor& x) const;
  // This network alone (no folds).
  ModelOutput run_one(const torch::Tensor& x) const;
  torch::Tensor logits(const torch::Tensor& x) const { return run(x).logits; }
  // One network's logits: fold 0 is the card's own weights, k the card's folds[k - 1]; -1 is
  // logits(x), every fold combined.
  torch::Tensor fold_logits(const torch::Tensor& x, int fold) const;
};

}  // namespace sagitta::segmentation

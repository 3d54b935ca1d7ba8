#pragma once
// A loaded segmentation model (TorchScript or native U-Net) behind a small interface without
// LibTorch, so that the CLI and other libraries compile without torch's headers. Torch-facing code
// (sliding window, Grad-CAM) reaches the network through segmentation/src/model_impl.h.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sagitta/core/model_card.h"

namespace sagitta::segmentation {

struct ModelOptions {
  std::string device = "cpu";  // "cpu" or "cuda" ("cuda" falls back to CPU with a note when absent)
  // LibTorch's intra-op threads; 0: all hardware threads. LibTorch's thread pool is per process,
  // so the last loaded model's setting applies to every model.
  int threads = 0;
  // Freeze and optimise TorchScript graphs (torch::jit::optimize_for_inference). Off by default:
  // measured on a quiet 2-core machine with a 3D U-Net at 64^3, the optimised graph ran 2.1x
  // slower than the plain one (oneDNN layout conversions around every 3D convolution).
  bool optimize = false;
};

class Model {
public:
  // Loads the weights named by `card` (the card is already validated and hash-checked by
  // load_card). Throws SegmentationError when the file is not a model of the card's format or the
  // network does not produce what the card says (checked with one forward pass on a small input).
  static Model load(const ModelCard& card, const ModelOptions& options = {});

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  const ModelCard& card() const;
  int num_classes() const;
  int dimensions() const;
  int in_channels() const;
  std::string device() const;         // the device actually used
  std::vector<std::string> notes() const;  // decisions taken while loading (device fallback, optimisation)
  // Spatial sizes must be multiples of this (1 when unknown, e.g. TorchScript).
  int size_divisor() const;

  // Logits for `input` (N x C x [D] x H x W floats, row-major, x fastest); `shape` has 4 (2D) or 5
  // (3D) entries. Returns N x classes x spatial logits and fills `output_shape`.
  std::vector<float> forward(const std::vector<float>& input, const std::vector<std::int64_t>& shape,
                             std::vector<std::int64_t>* output_shape = nullptr) const;

  struct Impl;
  Impl& impl() const { return *impl_; }

private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sagitta::segmentation

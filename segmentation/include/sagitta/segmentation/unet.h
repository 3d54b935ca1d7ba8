#pragma once
// Sagitta's native U-Net in LibTorch's torch::nn module style: 2D or 3D, configurable depth and
// width, instance norm + LeakyReLU (as nnU-Net), optional dropout and deep supervision. It exposes
// its inner activations so Grad-CAM needs no hooks. This header includes LibTorch: include it
// only from translation units that already pay for torch.
#include <torch/torch.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sagitta::segmentation {

struct UNetOptions {
  int dimensions = 3;        // 2 or 3
  int in_channels = 1;
  int num_classes = 2;       // output channels (background included)
  int base_channels = 16;    // channels at the first level, doubled per level
  int depth = 4;             // resolution levels (3 poolings for depth 4)
  int max_channels = 320;
  double dropout = 0.0;      // in the decoder convolutions
  bool deep_supervision = false;  // training only: extra lower-resolution outputs

  nlohmann::json to_json() const;
  static UNetOptions from_json(const nlohmann::json& j);
};

struct UNetOutput {
  torch::Tensor logits;                   // N x classes x (D) x H x W, at input resolution
  std::vector<torch::Tensor> deep;        // lower-resolution logits (deep supervision, training)
  torch::Tensor activation;               // the requested layer's activation, if any
};

class UNetImpl : public torch::nn::Module {
public:
  explicit UNetImpl(const UNetOptions& options);

  torch::Tensor forward(const torch::Tensor& x);  // logits
  // Logits plus the activation of `layer` (names from layer_names(); "" for none).
  UNetOutput forward_all(const torch::Tensor& x, const std::string& layer = "");
  std::vector<std::string> layer_names() const;  // e.g. "encoder.0" ... "bottleneck", "decoder.0" ...
  const UNetOptions& options() const { return options_; }
  // Input sizes must be multiples of this along every spatial axis.
  int size_divisor() const;

private:
  UNetOptions options_;
  struct Parts;
  std::shared_ptr<Parts> parts_;
};
TORCH_MODULE(UNet);

// Native checkpoints: the weights (torch::save of the module's parameters and buffers).
void save_unet(UNet& net, const std::string& path);
UNet load_unet(const UNetOptions& options, const std::string& path);

}  // namespace sagitta::segmentation

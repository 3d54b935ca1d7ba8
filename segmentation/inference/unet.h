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
  std::vector<torch::Tensor> deep;        // lower-resolution logits (deep supervision, training
                                          // mode only), finest first: 1/2, 1/4... of the input
  torch::Tensor activation;               // the requested layer's activation, if any
};

class UNetImpl : public torch::nn::Module {
public:
  explicit UNetImpl(const UNetOptions& options);

  torch::Tensor forward(const torch::Tensor& x);  // logits
  // Logits plus the activation of `layer` (names from layer_names(); "" for none).
  UNetOutput forward_all(const torch::Tensor& x, const std::string& layer = "");
  // "encoder.0" (full resolution) ... "bottleneck", "decoder.0" (deepest) ... "decoder.<depth-2>"
  // (full resolution, the usual Grad-CAM layer), "logits".
  std::vector<std::string> layer_names() const;
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
// Copies the weights stored at `path` into `net` by name. strict: every parameter must be present
// with its shape (else SegmentationError); otherwise mismatching ones keep their values and are
// returned (fine-tuning with a different number of classes re-learns only the heads).
std::vector<std::string> load_unet_weights(UNet& net, const std::string& path, bool strict);

}  // namespace sagitta::segmentation

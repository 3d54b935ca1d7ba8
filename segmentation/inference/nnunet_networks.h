#pragma once
// nnU-Net v2's networks (dynamic_network_architectures' PlainConvUNet and ResidualEncoderUNet with
// BasicBlockD, the ResEnc M/L/XL presets) as native torch::nn modules, built from the plans'
// architecture entry. Module and parameter names are those of the Python networks, so the
// named_parameters() of a network are exactly the keys of nnU-Net's state dict, duplicates included
// (every ConvDropoutNormReLU also registers its layers under `all_modules`, the decoder also holds
// the encoder under `decoder.encoder`). Inference only: deep supervision is off (only the full
// resolution output is computed) and dropout layers are registered but never applied.
// Includes LibTorch: include it only from translation units that already pay for torch.
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace sagitta::segmentation {

// The plans' `configurations.<name>.architecture` object, checked.
struct NNUNetArchitecture {
  enum class Kind { Plain, ResidualEncoder };
  Kind kind = Kind::Plain;
  int dimensions = 3;
  int in_channels = 1;
  int num_classes = 2;  // output channels (the number of regions for region-based models)
  std::vector<int> features;                      // per stage
  std::vector<std::vector<int64_t>> kernel_sizes;  // per stage, one entry per spatial axis
  std::vector<std::vector<int64_t>> strides;       // per stage
  std::vector<int> encoder_depth;   // n_conv_per_stage (Plain) or n_blocks_per_stage (ResEnc)
  std::vector<int> decoder_convs;   // n_conv_per_stage_decoder, n_stages - 1 entries
  bool conv_bias = false;
  bool norm = true;                 // InstanceNorm (None is accepted too)
  double norm_eps = 1e-5;
  bool norm_affine = true;
  bool nonlin = true;               // LeakyReLU (ReLU is accepted as slope 0)
  double negative_slope = 0.01;
  bool nonlin_first = false;        // conv -> nonlin -> norm (Plain only)
  bool dropout = false;             // a dropout module sits in all_modules (identity at inference)
  int stem_channels = 0;            // ResEnc; 0: features[0]

  int stages() const { return int(features.size()); }
  // Spatial sizes must be multiples of this along each axis (product of the strides), in the
  // network's axis order.
  std::vector<int64_t> size_divisors() const;

  // `architecture` = {network_class_name, arch_kwargs, _kw_requires_import}. The plans do not
  // carry the input and output channel counts (nnU-Net takes them from dataset.json), so they are
  // passed here. Throws SegmentationError naming the field for anything it cannot build.
  static NNUNetArchitecture from_json(const nlohmann::json& architecture, int in_channels, int num_classes);
};

struct NNUNetOutput {
  torch::Tensor logits;      // N x classes x spatial, full resolution
  torch::Tensor activation;  // the requested layer's activation, if any
};

class NNUNetNetworkImpl : public torch::nn::Module {
public:
  explicit NNUNetNetworkImpl(const NNUNetArchitecture& arch);

  torch::Tensor forward(const torch::Tensor& x) { return forward_all(x).logits; }
  NNUNetOutput forward_all(const torch::Tensor& x, const std::string& layer = "");
  // "encoder.0" (full resolution) ... "encoder.<n-1>" (the bottleneck, the encoder's deepest
  // activation), "decoder.0" (lowest resolution) ... "decoder.<n-2>" (full resolution), "logits".
  std::vector<std::string> layer_names() const;
  // The layer Grad-CAM uses when the card names none: the encoder's deepest activation.
  std::string default_gradcam_layer() const;
  const NNUNetArchitecture& architecture() const { return arch_; }

  // Copies a state dict (nnU-Net's network_weights) into the network. Every parameter and buffer
  // of the network must be present with its shape and no other key may be present; otherwise a
  // SegmentationError names the first offending key ("weights that do not fit the plans").
  void load_state_dict(const std::vector<std::pair<std::string, torch::Tensor>>& state, const std::string& where);

private:
  NNUNetArchitecture arch_;
  struct Parts;
  std::shared_ptr<Parts> parts_;
};
TORCH_MODULE(NNUNetNetwork);

}  // namespace sagitta::segmentation

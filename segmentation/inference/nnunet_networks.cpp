// nnU-Net v2's PlainConvUNet and ResidualEncoderUNet as torch::nn modules. Layer order and names
// follow dynamic_network_architectures (read from its source, written anew here):
//   ConvDropoutNormReLU  conv (padding (k-1)/2 per axis) [-> dropout] -> norm -> nonlin
//                        (nonlin before norm with nonlin_first), also listed under all_modules
//   StackedConvBlocks    convs: n of the above, the first one strided
//   BasicBlockD          conv1 (strided, with nonlin), conv2 (no nonlin), skip = [avg pool of
//                        kernel = stride if strided][1x1 conv without bias + norm if the channels
//                        change], out = nonlin2(conv2(conv1(x)) + skip(x))
//   encoder              Plain: stages.s.0 = StackedConvBlocks; ResEnc: stem (one conv block at
//                        stride 1) then stages.s = blocks of BasicBlockD
//   decoder              for s = 1..n-1 from the bottleneck up: transpconvs (kernel = stride =
//                        the encoder stage's stride), cat(upsampled, skip), stages (convs), and a
//                        1x1 seg_layer per stage (only the last one is applied at inference)
#include "nnunet_networks.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace nn = torch::nn;

// ---- architecture from the plans -------------------------------------------------------------

std::vector<int64_t> NNUNetArchitecture::size_divisors() const {
  std::vector<int64_t> d(std::size_t(dimensions), 1);
  for (const auto& s : strides)
    for (int a = 0; a < dimensions; ++a) d[std::size_t(a)] *= s[std::size_t(a)];
  return d;
}

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw SegmentationError("nnU-Net architecture: " + what);
}

std::string last_component(const std::string& dotted) {
  const auto dot = dotted.rfind('.');
  return dot == std::string::npos ? dotted : dotted.substr(dot + 1);
}

int as_int(const nlohmann::json& j, const std::string& name, int lo, int hi) {
  if (!j.is_number_integer()) bad(fmt::format("'{}' must be an integer, got {}", name, j.dump()));
  const auto v = j.get<int64_t>();
  if (v < lo || v > hi) bad(fmt::format("'{}' must be in {}..{}, got {}", name, lo, hi, v));
  return int(v);
}

// An int (repeated per stage) or a list of n ints.
std::vector<int> per_stage(const nlohmann::json& j, const std::string& name, int n, int lo, int hi) {
  if (j.is_number_integer()) return std::vector<int>(std::size_t(n), as_int(j, name, lo, hi));
  if (!j.is_array() || int(j.size()) != n) bad(fmt::format("'{}' must be an integer or a list of {} integers, got {}", name, n, j.dump()));
  std::vector<int> v;
  for (const auto& e : j) v.push_back(as_int(e, name, lo, hi));
  return v;
}

// An int, a list of n ints or a list of n lists of `dims` ints.
std::vector<std::vector<int64_t>> per_stage_axes(const nlohmann::json& j, const std::string& name, int n, int dims,
                                                  int lo, int hi) {
  auto axes = [&](const nlohmann::json& e) {
    if (e.is_number_integer()) return std::vector<int64_t>(std::size_t(dims), as_int(e, name, lo, hi));
    if (!e.is_array() || int(e.size()) != dims) bad(fmt::format("'{}': each entry needs {} values, got {}", name, dims, e.dump()));
    std::vector<int64_t> v;
    for (const auto& x : e) v.push_back(as_int(x, name, lo, hi));
    return v;
  };
  if (!j.is_array()) return std::vector<std::vector<int64_t>>(std::size_t(n), axes(j));
  if (int(j.size()) != n) bad(fmt::format("'{}' must have {} entries (n_stages), got {}", name, n, j.size()));
  std::vector<std::vector<int64_t>> v;
  for (const auto& e : j) v.push_back(axes(e));
  return v;
}

}  // namespace

NNUNetArchitecture NNUNetArchitecture::from_json(const nlohmann::json& architecture, int in_channels, int num_classes) {
  if (!architecture.is_object() || !architecture.contains("network_class_name") ||
      !architecture["network_class_name"].is_string() || !architecture.contains("arch_kwargs") ||
      !architecture["arch_kwargs"].is_object())
    bad("expected the plans' architecture object {network_class_name, arch_kwargs}");
  NNUNetArchitecture a;
  const std::string cls = architecture["network_class_name"].get<std::string>();
  const std::string short_cls = last_component(cls);
  if (short_cls == "PlainConvUNet") a.kind = Kind::Plain;
  else if (short_cls == "ResidualEncoderUNet") a.kind = Kind::ResidualEncoder;
  else bad("network class '" + cls + "' is not supported (PlainConvUNet and ResidualEncoderUNet are)");
  if (in_channels < 1 || num_classes < 1) bad("input channels and output classes must be at least 1");
  a.in_channels = in_channels;
  a.num_classes = num_classes;

  const auto& k = architecture["arch_kwargs"];
  const std::string depth_key = a.kind == Kind::Plain ? "n_conv_per_stage" : "n_blocks_per_stage";
  std::set<std::string> known = {"n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides", depth_key,
                                 "n_conv_per_stage_decoder", "conv_bias", "norm_op", "norm_op_kwargs", "dropout_op",
                                 "dropout_op_kwargs", "nonlin", "nonlin_kwargs", "deep_supervision"};
  if (a.kind == Kind::Plain) known.insert("nonlin_first");
  else known.insert({"block", "bottleneck_channels", "stem_channels"});
  for (const auto& [key, value] : k.items())
    if (!known.count(key)) bad("arch_kwargs '" + key + "' is not understood");
  for (const char* required : {"n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides"})
    if (!k.contains(required)) bad(std::string("arch_kwargs lacks '") + required + "'");
  if (!k.contains(depth_key)) bad("arch_kwargs lacks '" + depth_key + "'");
  if (!k.contains("n_conv_per_stage_decoder")) bad("arch_kwargs lacks 'n_conv_per_stage_decoder'");

  auto text = [&](const char* key) -> std::string {
    if (!k.contains(key) || k[key].is_null()) return "";
    if (!k[key].is_string()) bad(fmt::format("'{}' must be a class name, got {}", key, k[key].dump()));
    return last_component(k[key].get<std::string>());
  };
  const std::string conv_op = text("conv_op");
  if (conv_op == "Conv2d") a.dimensions = 2;
  else if (conv_op == "Conv3d") a.dimensions = 3;
  else bad("conv_op '" + conv_op + "' is not supported (Conv2d, Conv3d)");

  const int n = as_int(k["n_stages"], "n_stages", 1, 16);
  a.features = per_stage(k["features_per_stage"], "features_per_stage", n, 1, 1 << 16);
  a.kernel_sizes = per_stage_axes(k["kernel_sizes"], "kernel_sizes", n, a.dimensions, 1, 15);
  for (const auto& ks : a.kernel_sizes)
    for (auto v : ks)
      if (v % 2 == 0) bad(fmt::format("kernel_sizes: even kernels ({}) change the output size; not supported", v));
  a.strides = per_stage_axes(k["strides"], "strides", n, a.dimensions, 1, 16);
  a.encoder_depth = per_stage(k[depth_key], depth_key, n, 1, 64);
  a.decoder_convs = n > 1 ? per_stage(k["n_conv_per_stage_decoder"], "n_conv_per_stage_decoder", n - 1, 1, 64)
                          : std::vector<int>{};
  if (k.contains("conv_bias")) {
    if (!k["conv_bias"].is_boolean()) bad("'conv_bias' must be true or false");
    a.conv_bias = k["conv_bias"].get<bool>();
  }

  const std::string norm_op = text("norm_op");
  a.norm = !norm_op.empty();
  if (a.norm && norm_op != fmt::format("InstanceNorm{}d", a.dimensions))
    bad(fmt::format("norm_op '{}' is not supported with {} (InstanceNorm{}d or none)", norm_op, conv_op, a.dimensions));
  if (k.contains("norm_op_kwargs") && !k["norm_op_kwargs"].is_null()) {
    const auto& nk = k["norm_op_kwargs"];
    if (!nk.is_object()) bad("'norm_op_kwargs' must be an object");
    for (const auto& [key, value] : nk.items()) {
      if (key == "eps" && value.is_number() && value.get<double>() > 0) a.norm_eps = value.get<double>();
      else if (key == "affine" && value.is_boolean()) a.norm_affine = value.get<bool>();
      else if (key == "track_running_stats" && value.is_boolean() && !value.get<bool>()) continue;
      else if (key == "momentum" && value.is_number()) continue;  // no effect without running stats
      else bad("norm_op_kwargs '" + key + "': " + value.dump() + " is not supported");
    }
  }
  const std::string dropout_op = text("dropout_op");
  a.dropout = !dropout_op.empty();
  if (a.dropout && dropout_op != "Dropout" && dropout_op != fmt::format("Dropout{}d", a.dimensions))
    bad("dropout_op '" + dropout_op + "' is not supported");
  const std::string nonlin = text("nonlin");
  a.nonlin = !nonlin.empty();
  if (nonlin == "ReLU") a.negative_slope = 0.0;
  else if (a.nonlin && nonlin != "LeakyReLU") bad("nonlin '" + nonlin + "' is not supported (LeakyReLU, ReLU)");
  if (k.contains("nonlin_kwargs") && !k["nonlin_kwargs"].is_null()) {
    const auto& nk = k["nonlin_kwargs"];
    if (!nk.is_object()) bad("'nonlin_kwargs' must be an object");
    for (const auto& [key, value] : nk.items()) {
      if (key == "inplace" && value.is_boolean()) continue;
      if (key == "negative_slope" && value.is_number() && nonlin == "LeakyReLU") a.negative_slope = value.get<double>();
      else bad("nonlin_kwargs '" + key + "': " + value.dump() + " is not supported");
    }
  }
  if (k.contains("nonlin_first") && !k["nonlin_first"].is_null()) {
    if (!k["nonlin_first"].is_boolean()) bad("'nonlin_first' must be true or false");
    a.nonlin_first = k["nonlin_first"].get<bool>();
  }
  if (a.kind == Kind::ResidualEncoder) {
    const std::string block = text("block");
    if (!block.empty() && block != "BasicBlockD") bad("block '" + block + "' is not supported (BasicBlockD)");
    if (k.contains("bottleneck_channels") && !k["bottleneck_channels"].is_null())
      bad("bottleneck_channels is only used by BottleneckD blocks, which are not supported");
    if (k.contains("stem_channels") && !k["stem_channels"].is_null())
      a.stem_channels = as_int(k["stem_channels"], "stem_channels", 1, 1 << 16);
  }
  return a;
}

// ---- building blocks -------------------------------------------------------------------------
namespace {

struct Factory {
  const NNUNetArchitecture& a;

  nn::AnyModule conv(int in, int out, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                     bool bias) const {
    std::vector<int64_t> pad;
    for (auto k : kernel) pad.push_back((k - 1) / 2);
    if (a.dimensions == 2)
      return nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(in, out, torch::ExpandingArray<2>(kernel))
                                          .stride(torch::ExpandingArray<2>(stride))
                                          .padding(torch::ExpandingArray<2>(pad))
                                          .bias(bias)));
    return nn::AnyModule(nn::Conv3d(nn::Conv3dOptions(in, out, torch::ExpandingArray<3>(kernel))
                                        .stride(torch::ExpandingArray<3>(stride))
                                        .padding(torch::ExpandingArray<3>(pad))
                                        .bias(bias)));
  }
  nn::AnyModule transposed(int in, int out, const std::vector<int64_t>& stride) const {
    if (a.dimensions == 2)
      return nn::AnyModule(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in, out, torch::ExpandingArray<2>(stride))
                                                   .stride(torch::ExpandingArray<2>(stride))
                                                   .bias(a.conv_bias)));
    return nn::AnyModule(nn::ConvTranspose3d(nn::ConvTranspose3dOptions(in, out, torch::ExpandingArray<3>(stride))
                                                 .stride(torch::ExpandingArray<3>(stride))
                                                 .bias(a.conv_bias)));
  }
  nn::AnyModule norm(int channels) const {
    if (a.dimensions == 2)
      return nn::AnyModule(nn::InstanceNorm2d(nn::InstanceNorm2dOptions(channels).eps(a.norm_eps).affine(a.norm_affine)));
    return nn::AnyModule(nn::InstanceNorm3d(nn::InstanceNorm3dOptions(channels).eps(a.norm_eps).affine(a.norm_affine)));
  }
  nn::AnyModule avg_pool(const std::vector<int64_t>& stride) const {
    if (a.dimensions == 2)
      return nn::AnyModule(nn::AvgPool2d(nn::AvgPool2dOptions(torch::ExpandingArray<2>(stride)).stride(torch::ExpandingArray<2>(stride))));
    return nn::AnyModule(nn::AvgPool3d(nn::AvgPool3dOptions(torch::ExpandingArray<3>(stride)).stride(torch::ExpandingArray<3>(stride))));
  }
  nn::AnyModule dropout() const { return nn::AnyModule(nn::Dropout(nn::DropoutOptions(0.0))); }
  nn::AnyModule activation() const {
    return nn::AnyModule(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(a.negative_slope).inplace(true)));
  }
};

bool strided(const std::vector<int64_t>& s) {
  return std::any_of(s.begin(), s.end(), [](int64_t v) { return v != 1; });
}

// ConvDropoutNormReLU.
class ConvNormActImpl : public nn::Module {
public:
  ConvNormActImpl(const Factory& f, int in, int out, const std::vector<int64_t>& kernel,
                  const std::vector<int64_t>& stride, bool bias, bool with_dropout, bool with_nonlin)
      : nonlin_first_(f.a.nonlin_first), slope_(f.a.negative_slope) {
    conv_ = f.conv(in, out, kernel, stride, bias);
    register_module("conv", conv_.ptr());
    std::vector<nn::AnyModule> ops{conv_};
    if (with_dropout) {
      auto d = f.dropout();
      register_module("dropout", d.ptr());
      ops.push_back(d);
    }
    if (f.a.norm) {
      norm_ = f.norm(out);
      register_module("norm", norm_.ptr());
      ops.push_back(norm_);
    }
    act_ = with_nonlin && f.a.nonlin;
    if (act_) {
      auto act = f.activation();
      register_module("nonlin", act.ptr());
      ops.push_back(act);
    }
    if (nonlin_first_ && f.a.norm && act_) std::swap(ops[ops.size() - 1], ops[ops.size() - 2]);
    nn::ModuleList all;
    for (auto& op : ops) all->push_back(op.ptr());
    register_module("all_modules", all);
  }

  torch::Tensor forward(torch::Tensor x) {
    x = conv_.forward(x);
    const bool norm = !norm_.is_empty();
    if (act_ && (nonlin_first_ || !norm)) x = torch::leaky_relu_(x, slope_);
    if (norm) x = norm_.forward(x);
    if (act_ && !nonlin_first_ && norm) x = torch::leaky_relu_(x, slope_);
    return x;
  }

private:
  nn::AnyModule conv_, norm_;
  bool act_ = false, nonlin_first_ = false;
  double slope_ = 0.01;
};
TORCH_MODULE(ConvNormAct);

// StackedConvBlocks.
class ConvStackImpl : public nn::Module {
public:
  ConvStackImpl(const Factory& f, int n, int in, int out, const std::vector<int64_t>& kernel,
                const std::vector<int64_t>& stride) {
    nn::ModuleList convs;
    const std::vector<int64_t> one(stride.size(), 1);
    for (int i = 0; i < n; ++i) {
      blocks_.push_back(ConvNormAct(f, i == 0 ? in : out, out, kernel, i == 0 ? stride : one, f.a.conv_bias,
                                    f.a.dropout, true));
      convs->push_back(blocks_.back());
    }
    register_module("convs", convs);
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& b : blocks_) x = b->forward(x);
    return x;
  }

private:
  std::vector<ConvNormAct> blocks_;
};
TORCH_MODULE(ConvStack);

// BasicBlockD.
class ResidualBlockImpl : public nn::Module {
public:
  ResidualBlockImpl(const Factory& f, int in, int out, const std::vector<int64_t>& kernel,
                    const std::vector<int64_t>& stride)
      : slope_(f.a.negative_slope), act_(f.a.nonlin) {
    const std::vector<int64_t> one(stride.size(), 1);
    conv1_ = register_module("conv1", ConvNormAct(f, in, out, kernel, stride, f.a.conv_bias, f.a.dropout, true));
    conv2_ = register_module("conv2", ConvNormAct(f, out, out, kernel, one, f.a.conv_bias, false, false));
    if (act_) register_module("nonlin2", f.activation().ptr());
    if (strided(stride) || in != out) {
      nn::ModuleList skip;
      if (strided(stride)) {
        pool_ = f.avg_pool(stride);
        skip->push_back(pool_.ptr());
      }
      if (in != out) {
        projection_ = ConvNormAct(f, in, out, one, one, false, false, false);
        skip->push_back(projection_);
      }
      register_module("skip", skip);
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    torch::Tensor residual = x;
    if (!pool_.is_empty()) residual = pool_.forward(residual);
    if (projection_) residual = projection_->forward(residual);
    torch::Tensor out = conv2_->forward(conv1_->forward(x));
    out += residual;
    return act_ ? torch::leaky_relu_(out, slope_) : out;
  }

private:
  ConvNormAct conv1_{nullptr}, conv2_{nullptr}, projection_{nullptr};
  nn::AnyModule pool_;
  double slope_;
  bool act_;
};
TORCH_MODULE(ResidualBlock);

// StackedResidualBlocks.
class ResidualStackImpl : public nn::Module {
public:
  ResidualStackImpl(const Factory& f, int n, int in, int out, const std::vector<int64_t>& kernel,
                    const std::vector<int64_t>& stride) {
    nn::ModuleList blocks;
    const std::vector<int64_t> one(stride.size(), 1);
    for (int i = 0; i < n; ++i) {
      blocks_.push_back(ResidualBlock(f, i == 0 ? in : out, out, kernel, i == 0 ? stride : one));
      blocks->push_back(blocks_.back());
    }
    register_module("blocks", blocks);
  }
  torch::Tensor forward(torch::Tensor x) {
    for (auto& b : blocks_) x = b->forward(x);
    return x;
  }

private:
  std::vector<ResidualBlock> blocks_;
};
TORCH_MODULE(ResidualStack);

// PlainConvEncoder / ResidualEncoder: the stage outputs, full resolution first.
class EncoderImpl : public nn::Module {
public:
  explicit EncoderImpl(const Factory& f) {
    const auto& a = f.a;
    nn::ModuleList stages;
    int in = a.in_channels;
    if (a.kind == NNUNetArchitecture::Kind::ResidualEncoder) {
      const int stem = a.stem_channels > 0 ? a.stem_channels : a.features[0];
      stem_ = register_module("stem", ConvStack(f, 1, in, stem, a.kernel_sizes[0],
                                                std::vector<int64_t>(std::size_t(a.dimensions), 1)));
      in = stem;
    }
    for (int s = 0; s < a.stages(); ++s) {
      const auto& k = a.kernel_sizes[std::size_t(s)];
      const auto& st = a.strides[std::size_t(s)];
      const int out = a.features[std::size_t(s)];
      if (a.kind == NNUNetArchitecture::Kind::Plain) {
        ConvStack stack(f, a.encoder_depth[std::size_t(s)], in, out, k, st);
        nn::ModuleList wrapper;  // PlainConvEncoder wraps each stage (pooling would come first)
        wrapper->push_back(stack);
        stages->push_back(wrapper);
        stages_.push_back(nn::AnyModule(stack));
      } else {
        ResidualStack stack(f, a.encoder_depth[std::size_t(s)], in, out, k, st);
        stages->push_back(stack);
        stages_.push_back(nn::AnyModule(stack));
      }
      in = out;
    }
    register_module("stages", stages);
  }
  std::vector<torch::Tensor> forward(torch::Tensor x) {
    if (stem_) x = stem_->forward(x);
    std::vector<torch::Tensor> skips;
    for (auto& s : stages_) {
      x = s.forward(x);
      skips.push_back(x);
    }
    return skips;
  }

private:
  ConvStack stem_{nullptr};
  std::vector<nn::AnyModule> stages_;
};
TORCH_MODULE(Encoder);

}  // namespace

// ---- the network -----------------------------------------------------------------------------

struct NNUNetNetworkImpl::Parts {
  Encoder encoder{nullptr};
  std::vector<nn::AnyModule> transpconvs, seg_layers;
  std::vector<ConvStack> decoder_stages;
};

NNUNetNetworkImpl::NNUNetNetworkImpl(const NNUNetArchitecture& arch) : arch_(arch), parts_(std::make_shared<Parts>()) {
  const Factory f{arch_};
  const int n = arch_.stages();
  if (n < 1 || int(arch_.kernel_sizes.size()) != n || int(arch_.strides.size()) != n ||
      int(arch_.encoder_depth.size()) != n || int(arch_.decoder_convs.size()) != n - 1)
    throw SegmentationError("nnU-Net architecture: inconsistent per-stage lists");
  parts_->encoder = Encoder(f);
  register_module("encoder", parts_->encoder);
  // The decoder holds the encoder too (decoder.encoder.* in the state dict).
  auto decoder = std::make_shared<nn::Module>("UNetDecoder");
  decoder->register_module("encoder", parts_->encoder);
  nn::ModuleList stages, transpconvs, seg_layers;
  for (int s = 1; s < n; ++s) {
    const int below = arch_.features[std::size_t(n - s)];
    const int skip = arch_.features[std::size_t(n - s - 1)];
    parts_->transpconvs.push_back(f.transposed(below, skip, arch_.strides[std::size_t(n - s)]));
    transpconvs->push_back(parts_->transpconvs.back().ptr());
    parts_->decoder_stages.push_back(ConvStack(f, arch_.decoder_convs[std::size_t(s - 1)], 2 * skip, skip,
                                               arch_.kernel_sizes[std::size_t(n - s - 1)],
                                               std::vector<int64_t>(std::size_t(arch_.dimensions), 1)));
    stages->push_back(parts_->decoder_stages.back());
    const std::vector<int64_t> one(std::size_t(arch_.dimensions), 1);
    parts_->seg_layers.push_back(f.conv(skip, arch_.num_classes, one, one, true));
    seg_layers->push_back(parts_->seg_layers.back().ptr());
  }
  if (n == 1) {
    // No decoder stage: nothing to segment with (dynamic_network_architectures fails the same way).
    throw SegmentationError("nnU-Net architecture: n_stages must be at least 2");
  }
  decoder->register_module("stages", stages);
  decoder->register_module("transpconvs", transpconvs);
  decoder->register_module("seg_layers", seg_layers);
  register_module("decoder", decoder);
}

std::vector<std::string> NNUNetNetworkImpl::layer_names() const {
  std::vector<std::string> names;
  for (int s = 0; s < arch_.stages(); ++s) names.push_back(fmt::format("encoder.{}", s));
  for (std::size_t s = 0; s < parts_->decoder_stages.size(); ++s) names.push_back(fmt::format("decoder.{}", s));
  names.push_back("logits");
  return names;
}

std::string NNUNetNetworkImpl::default_gradcam_layer() const { return fmt::format("encoder.{}", arch_.stages() - 1); }

NNUNetOutput NNUNetNetworkImpl::forward_all(const torch::Tensor& x, const std::string& layer) {
  const int dims = arch_.dimensions;
  if (x.dim() != dims + 2)
    throw SegmentationError(fmt::format("nnU-Net network: expected a {}D input (N x C x {}), got {} dimensions", dims + 2,
                                        dims == 3 ? "D x H x W" : "H x W", x.dim()));
  if (x.size(1) != arch_.in_channels)
    throw SegmentationError(fmt::format("nnU-Net network: the model takes {} input channel(s), the input has {}",
                                        arch_.in_channels, x.size(1)));
  const auto divisors = arch_.size_divisors();
  for (int a = 0; a < dims; ++a)
    if (x.size(a + 2) % divisors[std::size_t(a)] != 0)
      throw SegmentationError(fmt::format("nnU-Net network: spatial size {} (axis {}) is not a multiple of {}",
                                          x.size(a + 2), a, divisors[std::size_t(a)]));
  if (!layer.empty()) {
    const auto names = layer_names();
    if (std::find(names.begin(), names.end(), layer) == names.end()) {
      std::ostringstream known;
      for (const auto& name : names) known << ' ' << name;
      throw SegmentationError("nnU-Net network: no layer named '" + layer + "'; layers:" + known.str());
    }
  }
  NNUNetOutput out;
  auto keep = [&](const std::string& name, const torch::Tensor& t) {
    if (name == layer) out.activation = t;
  };
  const std::vector<torch::Tensor> skips = parts_->encoder->forward(x);
  for (std::size_t s = 0; s < skips.size(); ++s) keep(fmt::format("encoder.{}", s), skips[s]);
  torch::Tensor h = skips.back();
  for (std::size_t s = 0; s < parts_->decoder_stages.size(); ++s) {
    torch::Tensor up = parts_->transpconvs[s].forward(h);
    h = parts_->decoder_stages[s]->forward(torch::cat({up, skips[skips.size() - 2 - s]}, 1));
    keep(fmt::format("decoder.{}", s), h);
  }
  out.logits = parts_->seg_layers.back().forward(h);
  keep("logits", out.logits);
  return out;
}

void NNUNetNetworkImpl::load_state_dict(const std::vector<std::pair<std::string, torch::Tensor>>& state,
                                        const std::string& where) {
  std::map<std::string, torch::Tensor> targets;
  for (const auto& p : named_parameters(true))
    if (p.value().defined()) targets.emplace(p.key(), p.value());
  for (const auto& b : named_buffers(true))
    if (b.value().defined()) targets.emplace(b.key(), b.value());
  const std::string hint = " (weights that do not fit the plans' architecture)";
  std::set<std::string> seen;
  torch::NoGradGuard no_grad;
  for (const auto& [key, value] : state) {
    const auto it = targets.find(key);
    if (it == targets.end()) throw SegmentationError(where + ": unexpected key '" + key + "'" + hint);
    if (!value.defined() || value.sizes() != it->second.sizes())
      throw SegmentationError(fmt::format("{}: '{}' has shape {} in the checkpoint but {} in the network{}", where, key,
                                          value.defined() ? fmt::format("{}", fmt::join(value.sizes(), "x")) : "none",
                                          fmt::join(it->second.sizes(), "x"), hint));
    if (!value.is_floating_point())
      throw SegmentationError(where + ": '" + key + "' is not a floating-point tensor" + hint);
    it->second.copy_(value);
    seen.insert(key);
  }
  for (const auto& [key, value] : targets)
    if (!seen.count(key)) throw SegmentationError(where + ": missing key '" + key + "'" + hint);
}

}  // namespace sagitta::segmentation

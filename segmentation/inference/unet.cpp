// Sagitta's native U-Net. One code path serves 2D and 3D: every layer is built through a small
// factory that picks the 2D or 3D torch::nn module and is stored type-erased (AnyModule), so the
// encoder/decoder logic is written once.
#include "unet.h"

#include <fmt/format.h>

#include <algorithm>
#include <sstream>

#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace nn = torch::nn;

// ---- options ---------------------------------------------------------------------------------

nlohmann::json UNetOptions::to_json() const {
  return {{"dimensions", dimensions},   {"in_channels", in_channels},   {"num_classes", num_classes},
          {"base_channels", base_channels}, {"depth", depth},           {"max_channels", max_channels},
          {"dropout", dropout},         {"deep_supervision", deep_supervision}};
}

UNetOptions UNetOptions::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw SegmentationError("U-Net options: expected a JSON object, got " + j.dump());
  UNetOptions o;
  try {
    o.dimensions = j.value("dimensions", o.dimensions);
    o.in_channels = j.value("in_channels", o.in_channels);
    o.num_classes = j.value("num_classes", o.num_classes);
    o.base_channels = j.value("base_channels", o.base_channels);
    o.depth = j.value("depth", o.depth);
    o.max_channels = j.value("max_channels", o.max_channels);
    o.dropout = j.value("dropout", o.dropout);
    o.deep_supervision = j.value("deep_supervision", o.deep_supervision);
  } catch (const nlohmann::json::exception& e) {
    throw SegmentationError(std::string("U-Net options: ") + e.what());
  }
  if (o.dimensions != 2 && o.dimensions != 3)
    throw SegmentationError(fmt::format("U-Net options: dimensions must be 2 or 3, got {}", o.dimensions));
  if (o.in_channels < 1 || o.num_classes < 2 || o.base_channels < 1 || o.max_channels < 1)
    throw SegmentationError("U-Net options: in_channels >= 1, num_classes >= 2 and channel counts >= 1 are required");
  if (o.depth < 1 || o.depth > 8)
    throw SegmentationError(fmt::format("U-Net options: depth must be 1..8, got {}", o.depth));
  if (o.dropout < 0 || o.dropout >= 1)
    throw SegmentationError(fmt::format("U-Net options: dropout must be in [0, 1), got {}", o.dropout));
  return o;
}

// ---- layers ----------------------------------------------------------------------------------
namespace {

nn::AnyModule conv(int dims, int in, int out, int kernel, int stride) {
  const int pad = kernel / 2;
  // No bias: the instance norm that follows removes any per-channel offset.
  if (dims == 2) return nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(pad).bias(false)));
  return nn::AnyModule(nn::Conv3d(nn::Conv3dOptions(in, out, kernel).stride(stride).padding(pad).bias(false)));
}

nn::AnyModule head(int dims, int in, int out) {
  if (dims == 2) return nn::AnyModule(nn::Conv2d(nn::Conv2dOptions(in, out, 1)));
  return nn::AnyModule(nn::Conv3d(nn::Conv3dOptions(in, out, 1)));
}

nn::AnyModule norm(int dims, int channels) {
  if (dims == 2) return nn::AnyModule(nn::InstanceNorm2d(nn::InstanceNorm2dOptions(channels).affine(true).eps(1e-5)));
  return nn::AnyModule(nn::InstanceNorm3d(nn::InstanceNorm3dOptions(channels).affine(true).eps(1e-5)));
}

nn::AnyModule upsample(int dims, int in, int out) {
  if (dims == 2) return nn::AnyModule(nn::ConvTranspose2d(nn::ConvTranspose2dOptions(in, out, 2).stride(2).bias(false)));
  return nn::AnyModule(nn::ConvTranspose3d(nn::ConvTranspose3dOptions(in, out, 2).stride(2).bias(false)));
}

nn::AnyModule dropout(int dims, double p) {
  // Channel dropout: neighbouring voxels are strongly correlated, so dropping single voxels
  // regularises little.
  if (dims == 2) return nn::AnyModule(nn::Dropout2d(nn::Dropout2dOptions(p)));
  return nn::AnyModule(nn::Dropout3d(nn::Dropout3dOptions(p)));
}

// conv -> norm -> LeakyReLU, twice; the first convolution may stride to downsample (a learned
// pooling, as nnU-Net does).
nn::Sequential block(int dims, int in, int out, int first_stride, double p_dropout) {
  nn::Sequential s;
  s->push_back("conv0", conv(dims, in, out, 3, first_stride));
  s->push_back("norm0", norm(dims, out));
  s->push_back("act0", nn::AnyModule(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.01).inplace(true))));
  if (p_dropout > 0) s->push_back("drop", dropout(dims, p_dropout));
  s->push_back("conv1", conv(dims, out, out, 3, 1));
  s->push_back("norm1", norm(dims, out));
  s->push_back("act1", nn::AnyModule(nn::LeakyReLU(nn::LeakyReLUOptions().negative_slope(0.01).inplace(true))));
  return s;
}

}  // namespace

// ---- network ---------------------------------------------------------------------------------

struct UNetImpl::Parts {
  std::vector<nn::Sequential> encoder;  // levels 0..depth-2 (full resolution first)
  nn::Sequential bottleneck{nullptr};
  std::vector<nn::AnyModule> up;        // up[j] feeds decoder[j]; decoder 0 is the deepest
  std::vector<nn::Sequential> decoder;
  std::vector<nn::AnyModule> deep_heads;  // one per decoder level but the last
  nn::AnyModule head;
};

UNetImpl::UNetImpl(const UNetOptions& options)
    : options_(UNetOptions::from_json(options.to_json())), parts_(std::make_shared<Parts>()) {
  const auto& o = options_;
  const int levels = o.depth;
  std::vector<int> ch(levels);
  for (int i = 0; i < levels; ++i) ch[i] = std::min(o.base_channels << i, o.max_channels);

  nn::ModuleList encoder, up, decoder, deep_heads;
  int in = o.in_channels;
  for (int i = 0; i + 1 < levels; ++i) {
    parts_->encoder.push_back(block(o.dimensions, in, ch[i], i == 0 ? 1 : 2, 0.0));
    encoder->push_back(parts_->encoder.back());
    in = ch[i];
  }
  parts_->bottleneck = block(o.dimensions, in, ch[levels - 1], levels > 1 ? 2 : 1, o.dropout);
  register_module("encoder", encoder);
  register_module("bottleneck", parts_->bottleneck);
  for (int j = 0; j + 1 < levels; ++j) {
    const int level = levels - 2 - j;
    parts_->up.push_back(upsample(o.dimensions, ch[level + 1], ch[level]));
    up->push_back(parts_->up.back().ptr());
    parts_->decoder.push_back(block(o.dimensions, 2 * ch[level], ch[level], 1, o.dropout));
    decoder->push_back(parts_->decoder.back());
    if (o.deep_supervision && j + 2 < levels) {
      parts_->deep_heads.push_back(head(o.dimensions, ch[level], o.num_classes));
      deep_heads->push_back(parts_->deep_heads.back().ptr());
    }
  }
  register_module("up", up);
  register_module("decoder", decoder);
  if (!parts_->deep_heads.empty()) register_module("deep_heads", deep_heads);
  parts_->head = head(o.dimensions, ch[0], o.num_classes);
  register_module("head", parts_->head.ptr());
}

int UNetImpl::size_divisor() const { return 1 << (options_.depth - 1); }

std::vector<std::string> UNetImpl::layer_names() const {
  std::vector<std::string> names;
  for (std::size_t i = 0; i < parts_->encoder.size(); ++i) names.push_back(fmt::format("encoder.{}", i));
  names.push_back("bottleneck");
  for (std::size_t j = 0; j < parts_->decoder.size(); ++j) names.push_back(fmt::format("decoder.{}", j));
  names.push_back("logits");
  return names;
}

torch::Tensor UNetImpl::forward(const torch::Tensor& x) { return forward_all(x).logits; }

UNetOutput UNetImpl::forward_all(const torch::Tensor& x, const std::string& layer) {
  const int spatial = options_.dimensions;
  if (x.dim() != spatial + 2)
    throw SegmentationError(fmt::format("U-Net: expected a {}D input (N x C x {}), got {} dimensions", spatial + 2,
                                        spatial == 3 ? "D x H x W" : "H x W", x.dim()));
  if (x.size(1) != options_.in_channels)
    throw SegmentationError(fmt::format("U-Net: the model takes {} input channel(s), the input has {}",
                                        options_.in_channels, x.size(1)));
  const int divisor = size_divisor();
  for (int d = 2; d < x.dim(); ++d)
    if (x.size(d) % divisor != 0)
      throw SegmentationError(fmt::format("U-Net: spatial size {} is not a multiple of {} (pad the input)",
                                          x.size(d), divisor));
  if (!layer.empty()) {
    const auto names = layer_names();
    if (std::find(names.begin(), names.end(), layer) == names.end()) {
      std::ostringstream known;
      for (const auto& n : names) known << ' ' << n;
      throw SegmentationError("U-Net: no layer named '" + layer + "'; layers:" + known.str());
    }
  }

  UNetOutput out;
  auto keep = [&](const std::string& name, const torch::Tensor& t) {
    if (name == layer) out.activation = t;
  };
  std::vector<torch::Tensor> skips;
  torch::Tensor h = x;
  for (std::size_t i = 0; i < parts_->encoder.size(); ++i) {
    h = parts_->encoder[i]->forward(h);
    keep(fmt::format("encoder.{}", i), h);
    skips.push_back(h);
  }
  h = parts_->bottleneck->forward(h);
  keep("bottleneck", h);
  const bool deep = options_.deep_supervision && is_training();
  for (std::size_t j = 0; j < parts_->decoder.size(); ++j) {
    h = parts_->up[j].forward(h);
    h = torch::cat({skips[skips.size() - 1 - j], h}, 1);
    h = parts_->decoder[j]->forward(h);
    keep(fmt::format("decoder.{}", j), h);
    if (deep && j < parts_->deep_heads.size()) out.deep.push_back(parts_->deep_heads[j].forward(h));
  }
  out.logits = parts_->head.forward(h);
  keep("logits", out.logits);
  // Deep outputs finest first: deep[0] is at half resolution, deep[1] at a quarter...
  std::reverse(out.deep.begin(), out.deep.end());
  return out;
}

// ---- checkpoints -----------------------------------------------------------------------------

void save_unet(UNet& net, const std::string& path) {
  try {
    torch::serialize::OutputArchive archive;
    net->save(archive);
    archive.save_to(path);
  } catch (const c10::Error& e) {
    throw SegmentationError(path + ": cannot write the U-Net weights: " + e.what_without_backtrace());
  }
}

namespace {

// Walks nested archives ("decoder.1.conv0.weight" -> archive decoder -> 1 -> conv0 -> weight).
bool read_tensor(torch::serialize::InputArchive& root, const std::string& name, torch::Tensor& t, bool buffer) {
  std::vector<std::string> parts;
  std::stringstream ss(name);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  torch::serialize::InputArchive* current = &root;
  std::vector<std::unique_ptr<torch::serialize::InputArchive>> chain;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    auto next = std::make_unique<torch::serialize::InputArchive>();
    if (!current->try_read(parts[i], *next)) return false;
    chain.push_back(std::move(next));
    current = chain.back().get();
  }
  return current->try_read(parts.back(), t, buffer);
}

}  // namespace

std::vector<std::string> load_unet_weights(UNet& net, const std::string& path, bool strict) {
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path);
  } catch (const c10::Error& e) {
    throw SegmentationError(path + ": not a Sagitta U-Net checkpoint (" + e.what_without_backtrace() + ")");
  }
  std::vector<std::string> skipped;
  torch::NoGradGuard no_grad;
  auto load = [&](const std::string& name, torch::Tensor& target, bool buffer) {
    torch::Tensor stored;
    bool ok = false;
    try {
      ok = read_tensor(archive, name, stored, buffer);
    } catch (const c10::Error&) {
      ok = false;
    }
    if (ok && stored.sizes() == target.sizes()) {
      target.copy_(stored);
      return;
    }
    if (strict)
      throw SegmentationError(fmt::format(
          "{}: {} '{}' {} (does the card's U-Net architecture match the weights?)", path,
          buffer ? "buffer" : "parameter", name,
          ok ? fmt::format("has shape {} in the file but {} in the network", fmt::join(stored.sizes(), "x"),
                           fmt::join(target.sizes(), "x"))
             : std::string("is missing")));
    skipped.push_back(name);
  };
  for (auto& p : net->named_parameters()) load(p.key(), p.value(), false);
  for (auto& b : net->named_buffers()) load(b.key(), b.value(), true);
  return skipped;
}

UNet load_unet(const UNetOptions& options, const std::string& path) {
  UNet net(options);
  load_unet_weights(net, path, /*strict=*/true);
  net->eval();
  return net;
}

}  // namespace sagitta::segmentation

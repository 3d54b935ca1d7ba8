// Model: TorchScript (torch::jit) or native U-Net weights behind a torch-free interface.
#include "model_impl.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <thread>

#include "sagitta/segmentation/error.h"
#ifdef SAGITTA_NATIVE_UNET
#include "nnunet_networks.h"
#include "torch_checkpoint.h"
#include "unet.h"
#endif

namespace sagitta::segmentation {
namespace {

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.size() > 300 ? line.substr(0, 300) + "..." : line;
}

std::string shape_text(at::IntArrayRef sizes) {
  std::string s;
  for (auto v : sizes) s += (s.empty() ? "" : "x") + std::to_string(v);
  return s;
}

}  // namespace

void set_threads(int threads) {
  const int n = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  if (at::get_num_threads() != n) at::set_num_threads(n);
}

ModelOutput Model::Impl::run(const torch::Tensor& x) const {
  ModelOutput out = run_one(x);
  if (folds.empty()) return out;
  const bool logits = card.fold_average == "logits", sigmoid = card.activation == "sigmoid";
  const double n = double(folds.size() + 1);
  const auto probabilities = [&](const torch::Tensor& l) { return sigmoid ? l.sigmoid() : l.softmax(1); };
  torch::Tensor sum = logits ? out.logits.clone() : probabilities(out.logits);
  for (const auto& f : folds) {
    const torch::Tensor y = f->run_one(x).logits;
    if (y.sizes() != out.logits.sizes())
      throw SegmentationError(fmt::format("model {}: fold {} returns {} outputs, the first fold {}", card.name,
                                          f->card.weights.filename().string(), y.size(1), out.logits.size(1)));
    sum = sum + (logits ? y : probabilities(y));
  }
  sum = sum / n;
  if (logits) out.logits = sum;
  else if (sigmoid) out.logits = torch::logit(sum, 1e-7);  // sigmoid(logit(p)) = p
  else out.logits = sum.clamp_min(1e-30).log();            // softmax(log p) = p, as the p sum to 1
  return out;
}

torch::Tensor Model::Impl::fold_logits(const torch::Tensor& x, int fold) const {
  if (fold < 0) return logits(x);
  if (fold == 0) return run_one(x).logits;
  if (std::size_t(fold) > folds.size())
    throw SegmentationError(fmt::format("model {}: no fold {} (it has {})", card.name, fold, folds.size() + 1));
  return folds[std::size_t(fold) - 1]->run_one(x).logits;
}

ModelOutput Model::Impl::run_one(const torch::Tensor& x) const {
  const torch::Tensor input = x.device() == device ? x : x.to(device);
  ModelOutput out;
  if (script) {
    auto& module = const_cast<torch::jit::Module&>(*script);
    const c10::IValue result = module.forward({input});
    if (card.returns_activation) {
      if (!result.isTuple() || result.toTupleRef().elements().size() < 2 || !result.toTupleRef().elements()[0].isTensor())
        throw SegmentationError("model " + card.name +
                                ": the card says forward returns (logits, activation) but the model returns something else; "
                                "set returns_activation to false or re-export with scripts/export_torchscript.py");
      out.logits = result.toTupleRef().elements()[0].toTensor();
      out.activation = result.toTupleRef().elements()[1].toTensor();
    } else {
      if (!result.isTensor())
        throw SegmentationError("model " + card.name +
                                ": forward returns a tuple but the card says it returns logits only; set returns_activation "
                                "to true if its second element is the Grad-CAM activation");
      out.logits = result.toTensor();
    }
    return out;
  }
#ifdef SAGITTA_NATIVE_UNET
  if (native_kind == NativeKind::NNUNet) {
    auto& net = *std::static_pointer_cast<NNUNetNetwork>(native);
    NNUNetOutput o = net->forward_all(input, card.gradcam_layer);
    out.logits = o.logits;
    out.activation = o.activation;
    return out;
  }
  auto& net = *std::static_pointer_cast<UNet>(native);
  UNetOutput o = net->forward_all(input, card.gradcam_layer);
  out.logits = o.logits;
  out.activation = o.activation;
  return out;
#else
  throw SegmentationError("native U-Net models are not available in this build");
#endif
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const ModelCard& Model::card() const { return impl_->card; }
int Model::num_classes() const { return impl_->card.output_channels(); }
int Model::dimensions() const { return impl_->card.dimensions; }
int Model::in_channels() const { return int(impl_->card.channels.size()); }
std::string Model::device() const { return impl_->device.str(); }
std::vector<std::string> Model::notes() const { return impl_->notes; }
int Model::size_divisor() const { return impl_->size_divisor; }

namespace {

void choose_device(Model::Impl& impl, const ModelOptions& options) {
  if (options.device == "cuda") {
    if (torch::cuda::is_available()) {
      impl.device = torch::Device(torch::kCUDA);
    } else {
      impl.notes.push_back("--device cuda requested but this LibTorch has no CUDA device; running on the CPU");
    }
  } else if (options.device != "cpu") {
    throw SegmentationError("unknown device '" + options.device + "' (expected cpu or cuda)");
  }
}

void load_torchscript(Model::Impl& impl, const ModelOptions& options, const std::string& where) {
  try {
    impl.script = torch::jit::load(impl.card.weights.string(), impl.device);
  } catch (const std::exception& e) {
    throw SegmentationError(where + " is not a TorchScript model (" + first_line(e.what()) +
                            "); export it with scripts/export_torchscript.py");
  }
  impl.script->eval();
  if (!options.optimize) return;
  // Freezing folds weights into the graph as constants; optimize_for_inference then fuses
  // conv+bias+activation and lets oneDNN pick its layouts. Some graphs refuse: keep the plain
  // module then, the numbers are the same.
  try {
    auto frozen = torch::jit::optimize_for_inference(*impl.script);
    impl.script = std::move(frozen);
    impl.notes.push_back("TorchScript graph frozen and optimised for inference");
  } catch (const std::exception& e) {
    impl.notes.push_back("TorchScript graph not optimised (" + first_line(e.what()) + ")");
  }
}

void load_native_unet(Model::Impl& impl, const std::string& where) {
#ifdef SAGITTA_NATIVE_UNET
  const ModelCard& card = impl.card;
  try {
    const UNetOptions unet_options = UNetOptions::from_json(card.unet);
    if (unet_options.in_channels != int(card.channels.size()) || unet_options.num_classes != card.num_classes() ||
        unet_options.dimensions != card.dimensions)
      throw SegmentationError(fmt::format("{}: the U-Net has {} input channels, {} classes, {}D but the card says {}, {}, {}D",
                                          where, unet_options.in_channels, unet_options.num_classes,
                                          unet_options.dimensions, card.channels.size(), card.num_classes(),
                                          card.dimensions));
    auto net = std::make_shared<UNet>(load_unet(unet_options, card.weights.string()));
    (*net)->eval();
    (*net)->to(impl.device);
    impl.size_divisor = (*net)->size_divisor();
    impl.native = net;
    impl.native_kind = Model::Impl::NativeKind::UNet;
  } catch (const SegmentationError&) {
    throw;
  } catch (const std::exception& e) {
    throw SegmentationError(where + " is not a native U-Net checkpoint for this card (" + first_line(e.what()) + ")");
  }
#else
  throw SegmentationError(where + ": native U-Net models are not available in this build");
#endif
}

// nnU-Net v2: the card's `unet` is the plans' architecture entry, `weights` one fold's checkpoint
// (checkpoint_final.pth / checkpoint_best.pth, read without Python). Each fold is one Model.
void load_nnunet(Model::Impl& impl, const std::string& where) {
#ifdef SAGITTA_NATIVE_UNET
  ModelCard& card = impl.card;
  if (card.unet.is_object() && card.unet.contains("num_outputs")) {
    const auto& n = card.unet["num_outputs"];
    if (!n.is_number_integer() || n.get<int64_t>() < 1 || n.get<int64_t>() > 65536)
      throw SegmentationError(where + ": unet.num_outputs must be a positive integer");
    impl.num_outputs = n.get<int>();
  }
  const NNUNetArchitecture arch =
      NNUNetArchitecture::from_json(card.unet, int(card.channels.size()), impl.num_outputs);
  if (arch.dimensions != card.dimensions)
    throw SegmentationError(fmt::format("{}: the plans' network is {}D but the card says {}D", where, arch.dimensions,
                                        card.dimensions));
  NNUNetCheckpoint checkpoint = read_nnunet_checkpoint(card.weights.string());
  auto net = std::make_shared<NNUNetNetwork>(arch);
  (*net)->load_state_dict(checkpoint.network_weights, where);
  checkpoint.network_weights.clear();
  (*net)->eval();
  (*net)->to(impl.device);
  if (card.gradcam_layer.empty()) card.gradcam_layer = (*net)->default_gradcam_layer();
  int64_t divisor = 1;
  for (int64_t d : arch.size_divisors()) divisor = std::lcm(divisor, d);
  impl.size_divisor = int(divisor);
  impl.native = net;
  impl.native_kind = Model::Impl::NativeKind::NNUNet;
  impl.checkpoint_mirroring_axes = checkpoint.mirroring_axes;
  // inference_allowed_mirroring_axes index the network's spatial dimensions ([D] H W): as card
  // axes through the tensor order (memory axis m is spatial dimension dims - 1 - m).
  if (checkpoint.mirroring_axes) {
    const auto order = card.tensor_order();
    std::string axes;
    for (int a : *checkpoint.mirroring_axes) {
      if (a < 0 || a >= card.dimensions)
        throw SegmentationError(fmt::format("{}: the checkpoint's mirroring axis {} is not one of the {}D network's",
                                            where, a, card.dimensions));
      axes += char('x' + order[std::size_t(card.dimensions - 1 - a)]);
    }
    card.mirror_axes = axes;
  } else {
    card.mirror_axes = "";  // saved as None: nnU-Net's predictor does not mirror such a model
  }
  impl.trainer_name = checkpoint.trainer_name;
  if (!checkpoint.trainer_name.empty()) impl.notes.push_back("nnU-Net checkpoint of trainer " + checkpoint.trainer_name);
#else
  throw SegmentationError(where + ": nnU-Net models are not available in this build");
#endif
}

// One forward pass on a small input proves the model takes the card's channels and dimensions
// and gives the card's classes at the input's size (sliding window needs that). It also warms up
// oneDNN's kernels before anything is timed.
void probe(Model::Impl& impl, const std::string& where) {
  const ModelCard& card = impl.card;
  std::vector<int64_t> shape = {1, int64_t(card.channels.size())};
  std::vector<int64_t> small;
  for (auto it = card.patch_size.rbegin(); it != card.patch_size.rend(); ++it) {
    int64_t p = std::min<int64_t>(*it, 32);
    p = std::max<int64_t>(impl.size_divisor, p / impl.size_divisor * impl.size_divisor);
    small.push_back(p);
  }
  std::vector<int64_t> full(card.patch_size.rbegin(), card.patch_size.rend());
  if (card.dimensions == 3) {
    // The tensor's order (tensor_axes), not the card's x y z.
    const auto order = card.tensor_order();
    full = {card.patch_size[std::size_t(order[2])], card.patch_size[std::size_t(order[1])], card.patch_size[std::size_t(order[0])]};
    small = full;
    for (auto& p : small) p = std::max<int64_t>(impl.size_divisor, std::min<int64_t>(p, 32) / impl.size_divisor * impl.size_divisor);
  }
  std::string last_error;
  for (const auto& spatial : {small, full}) {
    std::vector<int64_t> s = shape;
    s.insert(s.end(), spatial.begin(), spatial.end());
    try {
      c10::InferenceMode guard;
      const auto out = impl.run(torch::zeros(s)).logits;
      if (out.dim() != int64_t(s.size()) || out.size(0) != 1 || out.size(1) != card.output_channels() ||
          out.sizes().slice(2) != at::IntArrayRef(spatial))
        throw SegmentationError(fmt::format(
            "{}: for an input {} the model returns logits {}, but the card expects {} {} at the input's size ({})",
            where, shape_text(s), shape_text(out.sizes()), card.output_channels(),
            card.regions.empty() ? "classes" : "regions", shape_text(spatial)));
      return;
    } catch (const SegmentationError&) {
      throw;
    } catch (const std::exception& e) {
      last_error = first_line(e.what());
    }
  }
  throw SegmentationError(fmt::format("{} does not accept the card's input ({} channel(s), {}D, patch {}): {}", where,
                                      card.channels.size(), card.dimensions, shape_text(full), last_error));
}

}  // namespace

namespace {

// One network of the card with the card's main weights.
std::unique_ptr<Model::Impl> load_network(const ModelCard& card, const ModelOptions& options) {
  auto impl = std::make_unique<Model::Impl>();
  impl->card = card;
  const std::string where = "model " + card.weights.string();
  choose_device(*impl, options);
  impl->num_outputs = card.output_channels();
  if (card.format == "torchscript") load_torchscript(*impl, options, where);
  else if (card.format == "native-unet") load_native_unet(*impl, where);
  else if (card.format == "nnunet") load_nnunet(*impl, where);
  else throw SegmentationError(where + ": unknown model format '" + card.format + "'");
  return impl;
}

}  // namespace

Model Model::load(const ModelCard& card, const ModelOptions& options) {
  set_threads(options.threads);
  auto impl = load_network(card, options);
  impl->notes.push_back(fmt::format("LibTorch intra-op threads: {}", at::get_num_threads()));
  for (const auto& fold : card.folds) {
    ModelCard fold_card = card;
    fold_card.weights = fold.weights;
    fold_card.sha256 = fold.sha256;
    fold_card.folds.clear();
    impl->folds.push_back(load_network(fold_card, options));
  }
  if (!card.folds.empty())
    impl->notes.push_back(fmt::format("{} folds, their {} averaged", card.folds.size() + 1,
                                      card.fold_average == "logits" ? "logits" : "probabilities"));
  probe(*impl, "model " + card.weights.string());
  return Model(std::move(impl));
}

std::vector<float> Model::forward(const std::vector<float>& input, const std::vector<std::int64_t>& shape,
                                  std::vector<std::int64_t>* output_shape) const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  if (shape.size() != std::size_t(dimensions() + 2) || n != int64_t(input.size()))
    throw SegmentationError(fmt::format("model {}: forward needs an N x C x {}spatial buffer matching its shape",
                                        card().name, dimensions() == 3 ? "3 " : "2 "));
  c10::InferenceMode guard;
  auto x = torch::from_blob(const_cast<float*>(input.data()), shape, torch::kFloat32);
  torch::Tensor y;
  try {
    y = impl_->logits(x).to(torch::kCPU).contiguous();
  } catch (const c10::Error& e) {
    throw SegmentationError("model " + card().name + ": forward failed: " + first_line(e.what_without_backtrace()));
  }
  if (output_shape) *output_shape = y.sizes().vec();
  return {y.data_ptr<float>(), y.data_ptr<float>() + y.numel()};
}

}  // namespace sagitta::segmentation

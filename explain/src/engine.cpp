// The torch side of sagitta::explain: one pass over the sliding windows that yields logits, maps
// (Grad-CAM family or occlusion) and entropy; the deletion curve; randomised model copies.
#include "engine.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "model_impl.h"  // segmentation's torch-facing Model (see segmentation/CMakeLists.txt)
#include "sagitta/core/image.h"
#include "sagitta/explain/error.h"
#include "sagitta/segmentation/sliding_window.h"
#include "unet.h"

namespace sagitta::explain::detail {
namespace seg = sagitta::segmentation;
namespace {

using Clock = std::chrono::steady_clock;

Image::Pointer new_image(const itk::ImageBase<3>& geometry, const Image::SizeType& size, float value) {
  auto image = Image::New();
  Image::RegionType region;
  region.SetSize(size);
  image->SetRegions(region);
  image->SetOrigin(geometry.GetOrigin());
  image->SetSpacing(geometry.GetSpacing());
  image->SetDirection(geometry.GetDirection());
  sagitta::allocate_huge(image.GetPointer());
  std::fill_n(image->GetBufferPointer(), region.GetNumberOfPixels(), value);
  return image;
}

// z y x views over ITK buffers (no copy).
torch::Tensor view(const Image& image) {
  const auto s = image.GetBufferedRegion().GetSize();
  return torch::from_blob(const_cast<float*>(image.GetBufferPointer()), {int64_t(s[2]), int64_t(s[1]), int64_t(s[0])},
                          torch::kFloat32);
}
// Label maps are uint16, which this LibTorch has no dtype for: copied to int32.
torch::Tensor labels_tensor(const LabelImage& image) {
  const auto s = image.GetBufferedRegion().GetSize();
  torch::Tensor t = torch::empty({int64_t(s[2]), int64_t(s[1]), int64_t(s[0])}, torch::kInt32);
  std::copy_n(image.GetBufferPointer(), t.numel(), t.data_ptr<int32_t>());
  return t;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// The window layout of sliding_window (same patch, padding and starts), so that explanations and
// segmentations see the same windows.
struct Layout {
  bool two_d = false;
  std::vector<int64_t> patch, volume, padded, before;  // z y x
  bool needs_pad = false;
  std::vector<std::array<int64_t, 3>> windows;
  torch::Tensor gauss;  // z y x
  Image::SizeType padded_size;

  torch::Tensor pad(const torch::Tensor& v, float value) const {
    if (!needs_pad) return v;
    torch::Tensor p = torch::full({padded[0], padded[1], padded[2]}, value, v.options());
    p.narrow(0, before[0], volume[0]).narrow(1, before[1], volume[1]).narrow(2, before[2], volume[2]).copy_(v);
    return p;
  }
  torch::Tensor crop(const torch::Tensor& v) const {
    return needs_pad ? v.narrow(0, before[0], volume[0]).narrow(1, before[1], volume[1]).narrow(2, before[2], volume[2]) : v;
  }
  // The window's block of the last three dimensions of `t`.
  torch::Tensor region(const torch::Tensor& t, std::size_t w) const {
    const auto& s = windows[w];
    const int64_t d = t.dim() - 3;
    return t.narrow(d, s[0], patch[0]).narrow(d + 1, s[1], patch[1]).narrow(d + 2, s[2], patch[2]);
  }
};

Layout make_layout(const sagitta::ModelCard& card, const Image& grid, double overlap, double sigma_scale) {
  Layout g;
  g.two_d = card.dimensions == 2;
  g.patch = {g.two_d ? 1 : int64_t(card.patch_size[2]), int64_t(card.patch_size[1]), int64_t(card.patch_size[0])};
  const auto size = grid.GetLargestPossibleRegion().GetSize();
  g.volume = {int64_t(size[2]), int64_t(size[1]), int64_t(size[0])};
  g.padded.resize(3);
  g.before.resize(3);
  for (int a = 0; a < 3; ++a) {
    g.padded[a] = std::max(g.volume[a], g.patch[a]);
    g.before[a] = (g.padded[a] - g.volume[a]) / 2;
    g.needs_pad |= g.padded[a] != g.volume[a];
  }
  for (int a = 0; a < 3; ++a) g.padded_size[a] = itk::SizeValueType(g.padded[2 - a]);
  std::vector<std::vector<int>> starts(3);
  for (int a = 0; a < 3; ++a)
    starts[a] = seg::window_starts(int(g.padded[a]), int(g.patch[a]), g.two_d && a == 0 ? 0.0 : overlap);
  for (int z : starts[0])
    for (int y : starts[1])
      for (int x : starts[2]) g.windows.push_back({z, y, x});
  const auto w = seg::importance_weights({int(g.patch[2]), int(g.patch[1]), int(g.patch[0])}, sigma_scale);
  g.gauss = torch::from_blob(const_cast<float*>(w.data()), {g.patch[0], g.patch[1], g.patch[2]}, torch::kFloat32).clone();
  return g;
}

// Inputs as C z y x, padded like sliding_window (each channel's minimum).
torch::Tensor padded_inputs(const std::vector<Image::Pointer>& channels, const Layout& g) {
  std::vector<torch::Tensor> inputs;
  for (const auto& c : channels) {
    torch::Tensor v = view(*c);
    inputs.push_back(g.pad(v, g.needs_pad ? v.min().item<float>() : 0.0f));
  }
  return torch::stack(inputs);
}

// ---- the network -------------------------------------------------------------------------------

seg::UNet* native_unet(const seg::Model::Impl& impl) {
  return impl.native ? static_cast<seg::UNet*>(impl.native.get()) : nullptr;
}

std::vector<torch::nn::Module*> dropout_modules(const seg::Model::Impl& impl) {
  std::vector<torch::nn::Module*> out;
  if (auto* net = native_unet(impl))
    for (const auto& m : (*net)->modules(false))
      if (dynamic_cast<torch::nn::Dropout2dImpl*>(m.get()) || dynamic_cast<torch::nn::Dropout3dImpl*>(m.get()) ||
          dynamic_cast<torch::nn::DropoutImpl*>(m.get()))
        out.push_back(m.get());
  return out;
}

// Switches dropout on for MC sampling and back off whatever happens (the model stays in eval mode
// for everyone else).
struct DropoutOn {
  std::vector<torch::nn::Module*> modules;
  explicit DropoutOn(std::vector<torch::nn::Module*> m) : modules(std::move(m)) {
    for (auto* d : modules) d->train(true);
  }
  ~DropoutOn() {
    for (auto* d : modules) d->train(false);
  }
};

// A copy of the network whose every floating-point parameter is redrawn from a normal
// distribution with that tensor's own mean and standard deviation (the "model randomisation"
// sanity check: same architecture and scale of activations, no learnt structure).
std::unique_ptr<seg::Model::Impl> randomised_copy(const seg::Model::Impl& src, unsigned seed) {
  auto r = std::make_unique<seg::Model::Impl>();
  r->card = src.card;
  r->device = src.device;
  r->size_divisor = src.size_divisor;
  torch::NoGradGuard no_grad;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  auto redraw = [&](torch::Tensor target, const torch::Tensor& like) {
    if (!like.is_floating_point() || like.numel() == 0) return;
    const double mean = like.mean().item<double>();
    const double sd = like.numel() > 1 ? like.std().item<double>() : 0.0;
    if (!(sd > 0)) return;  // constant tensors (norm scales of 1, zero biases) keep their value
    torch::Tensor t = torch::empty(like.sizes(), torch::kFloat32);
    t.normal_(mean, sd, gen);
    target.copy_(t.to(target.options()));
  };
  if (src.script) {
    r->script = src.script->deepcopy();
    for (auto p : r->script->parameters()) redraw(p, p.detach().clone());
    r->script->eval();
  } else if (auto* net = native_unet(src)) {
    auto copy = std::make_shared<seg::UNet>((*net)->options());
    const auto original = (*net)->named_parameters(true);
    for (auto& item : (*copy)->named_parameters(true)) redraw(item.value(), original[item.key()].detach().to(torch::kCPU));
    (*copy)->eval();
    (*copy)->to(src.device);
    r->native = copy;
  } else {
    throw ExplainError("the model has neither a TorchScript nor a native network to randomise");
  }
  return r;
}

// ---- maps of one batch ------------------------------------------------------------------------

std::vector<int64_t> spatial_dims(int64_t dim, int64_t first) {
  std::vector<int64_t> d;
  for (int64_t i = first; i < dim; ++i) d.push_back(i);
  return d;
}

// Grad-CAM family from the activation A (B K spatial) and dS/dA; ReLU applied; B spatial'.
torch::Tensor cam_from(const torch::Tensor& A, const torch::Tensor& g, Method method) {
  const auto sp = spatial_dims(A.dim(), 2);
  torch::Tensor cam;
  switch (method) {
    case Method::GradCam:
      cam = (g.mean(sp, true) * A).sum(1);
      break;
    case Method::GradCamPlusPlus: {
      // Chattopadhyay et al.: alpha = g^2 / (2 g^2 + sum(A) g^3) (the exponential-score closed
      // form), weights = sum(alpha * ReLU(g)); alpha is 0 where the denominator is.
      const torch::Tensor g2 = g * g, g3 = g2 * g;
      const torch::Tensor denom = 2 * g2 + A.sum(sp, true) * g3;
      const torch::Tensor alpha = torch::where(denom != 0, g2 / torch::where(denom != 0, denom, torch::ones_like(denom)),
                                               torch::zeros_like(denom));
      cam = ((alpha * torch::relu(g)).sum(sp, true) * A).sum(1);
      break;
    }
    case Method::HiResCam:
      cam = (g * A).sum(1);
      break;
    case Method::Occlusion:
      throw ExplainError("occlusion is not a CAM method");
  }
  return torch::relu(cam);
}

torch::Tensor upsample(const torch::Tensor& cam, at::IntArrayRef size) {
  if (cam.sizes().slice(1) == size) return cam;
  namespace F = torch::nn::functional;
  auto o = F::InterpolateFuncOptions().size(size.vec()).align_corners(false);
  if (size.size() == 2)
    o.mode(torch::kBilinear);
  else
    o.mode(torch::kTrilinear);
  return F::interpolate(cam.unsqueeze(1), o).squeeze(1);
}

// Score per sample: sum (or mean) of logits[:, k] over the mask (B spatial, float).
torch::Tensor score(const torch::Tensor& logits, int k, const torch::Tensor& maskf, ScoreReduction r) {
  torch::Tensor s = (logits.select(1, k) * maskf).flatten(1).sum(1);
  if (r == ScoreReduction::Mean) s = s / maskf.flatten(1).sum(1).clamp_min(1);
  return s;
}

struct Network {
  const seg::Model::Impl* impl = nullptr;
  std::unique_ptr<seg::Model::Impl> owned;
  torch::Tensor run_logits(const torch::Tensor& x) const { return impl->run(x).logits; }
};

struct BatchResult {
  torch::Tensor logits;               // B C spatial (network layout), averaged over flips
  std::vector<torch::Tensor> maps;    // per label: B spatial
  std::vector<torch::Tensor> has;     // per label: B bool
  torch::Tensor entropy;              // B spatial
  int forwards = 0, backwards = 0;
};

// Occlusion sensitivity of one batch: for every window with a target, boxes of `size` voxels
// (half overlapping) are set to `fill` (per channel: the volume's minimum, i.e. background such
// as air, the value windows are padded with) in batches of copies; the score drop is spread over
// the occluded voxels and averaged where occluders overlap. (The normalised mean, 0, is no
// "removal": for CT it is a soft-tissue value close to many organs.)
torch::Tensor occlusion(const Network& net, const torch::Tensor& x, const torch::Tensor& maskf, const torch::Tensor& has,
                        const torch::Tensor& base, const torch::Tensor& fill, int k, ScoreReduction r, int size,
                        int& forwards) {
  torch::NoGradGuard no_grad;
  const int64_t spatial = x.dim() - 2;
  std::vector<std::vector<int>> starts(static_cast<std::size_t>(spatial));
  std::vector<int64_t> edge(static_cast<std::size_t>(spatial));
  for (int64_t a = 0; a < spatial; ++a) {
    edge[std::size_t(a)] = std::min<int64_t>(size, x.size(2 + a));
    starts[std::size_t(a)] = seg::window_starts(int(x.size(2 + a)), int(edge[std::size_t(a)]), 0.5);
  }
  std::vector<std::vector<int64_t>> boxes{{}};
  for (int64_t a = 0; a < spatial; ++a) {
    std::vector<std::vector<int64_t>> next;
    for (const auto& b : boxes)
      for (int s : starts[std::size_t(a)]) {
        auto nb = b;
        nb.push_back(s);
        next.push_back(nb);
      }
    boxes = next;
  }
  auto block = [&](torch::Tensor t, const std::vector<int64_t>& b, int64_t first) {
    for (int64_t a = 0; a < spatial; ++a) t = t.narrow(first + a, b[std::size_t(a)], edge[std::size_t(a)]);
    return t;
  };
  torch::Tensor sum = torch::zeros(maskf.sizes(), torch::kFloat32), count = torch::zeros(maskf.sizes(), torch::kFloat32);
  const torch::Tensor s0 = score(base, k, maskf, r).to(torch::kCPU);
  constexpr std::size_t kGroup = 16;  // occluded copies per forward pass
  for (int64_t b = 0; b < x.size(0); ++b) {
    if (!has[b].item<bool>()) continue;
    for (std::size_t first = 0; first < boxes.size(); first += kGroup) {
      const std::size_t n = std::min(kGroup, boxes.size() - first);
      torch::Tensor xs = x[b].unsqueeze(0).repeat_interleave(int64_t(n), 0).clone();
      for (std::size_t j = 0; j < n; ++j) {
        torch::Tensor box = block(xs[int64_t(j)], boxes[first + j], 1);
        for (int64_t c = 0; c < box.size(0); ++c) box[c].fill_(fill[c].item<float>());
      }
      const torch::Tensor y = net.run_logits(xs);
      ++forwards;
      const torch::Tensor s = score(y, k, maskf[b].unsqueeze(0).to(y.device()), r).to(torch::kCPU);
      for (std::size_t j = 0; j < n; ++j) {
        block(sum[b], boxes[first + j], 0).add_(s0[b] - s[int64_t(j)]);
        block(count[b], boxes[first + j], 0).add_(1.0f);
      }
    }
  }
  return torch::relu(sum / count.clamp_min(1));
}

BatchResult run_batch(const Network& net, const torch::Tensor& x, const torch::Tensor& region, const EngineRequest& r,
                      const std::vector<std::vector<int64_t>>& flips, const std::vector<torch::nn::Module*>& dropout,
                      int occlusion_size, const torch::Tensor& fill) {
  BatchResult out;
  const bool cam = !r.labels.empty() && r.method != Method::Occlusion;
  std::vector<torch::Tensor> probabilities;  // samples for the entropy
  torch::Tensor flip_sum;
  {
    torch::NoGradGuard no_grad;
    for (const auto& f : flips) {
      if (f.empty() || !(r.mirror || r.uncertainty)) continue;
      const torch::Tensor y = net.run_logits(x.flip(f)).flip(f);
      ++out.forwards;
      if (r.mirror) flip_sum = flip_sum.defined() ? flip_sum + y : y;
      if (r.uncertainty) probabilities.push_back(torch::softmax(y, 1));
    }
    if (r.uncertainty && !dropout.empty()) {
      DropoutOn on(dropout);
      for (int i = 0; i < r.mc_samples; ++i) {
        probabilities.push_back(torch::softmax(net.run_logits(x), 1));
        ++out.forwards;
      }
    }
  }

  torch::Tensor logits, activation;
  if (cam) {
    // Gradients are needed only down to the activation: the input requires grad so that the graph
    // is recorded even when the model's parameters do not, and autograd::grad stops at the
    // activation (no parameter gradients are computed).
    torch::AutoGradMode grad_on(true);
    const torch::Tensor xg = x.detach().requires_grad_(true);
    seg::ModelOutput o = net.impl->run(xg);
    logits = o.logits;
    activation = o.activation;
    if (!activation.defined() || !activation.requires_grad())
      throw ExplainError("model '" + net.impl->card.name + "' returned no activation of layer '" +
                         net.impl->card.gradcam_layer + "' that depends on the input; Grad-CAM needs one");
  } else {
    torch::NoGradGuard no_grad;
    logits = net.run_logits(x);
  }
  ++out.forwards;
  torch::Tensor averaged = logits.detach();
  if (flip_sum.defined()) averaged = (averaged + flip_sum) / double(flips.size());
  out.logits = averaged;
  if (r.uncertainty) {
    probabilities.push_back(torch::softmax(logits.detach(), 1));
    const torch::Tensor p = torch::stack(probabilities).mean(0);
    const double norm = std::log(double(std::max<int64_t>(2, p.size(1))));
    out.entropy = (-(p * torch::log(p.clamp_min(1e-12))).sum(1) / norm).to(torch::kCPU);
  }
  if (r.labels.empty()) return out;

  const torch::Tensor predicted = averaged.argmax(1);
  for (std::size_t i = 0; i < r.labels.size(); ++i) {
    const int k = r.labels[i];
    torch::Tensor mask;
    if (region.defined())
      mask = (r.region_is_label_map ? region == k : region != 0).to(predicted.device());
    else
      mask = predicted == k;
    const torch::Tensor maskf = mask.to(torch::kFloat32);
    const torch::Tensor has = mask.flatten(1).any(1).to(torch::kCPU);
    torch::Tensor map;
    if (!has.any().item<bool>()) {
      map = torch::zeros(mask.sizes(), torch::kFloat32);
    } else if (r.method == Method::Occlusion) {
      map = occlusion(net, x, maskf, has, logits, fill, k, r.score, occlusion_size, out.forwards);
    } else {
      const torch::Tensor s = score(logits, k, maskf, r.score).sum();
      const torch::Tensor g = torch::autograd::grad({s}, {activation}, {}, /*retain_graph=*/true)[0];
      ++out.backwards;
      torch::NoGradGuard no_grad;
      map = upsample(cam_from(activation.detach(), g, r.method), mask.sizes().slice(1)).to(torch::kCPU);
    }
    out.maps.push_back(map.contiguous());
    out.has.push_back(has);
  }
  return out;
}

}  // namespace

bool has_dropout(const seg::Model& model) { return !dropout_modules(model.impl()).empty(); }

EngineResult run_windows(const seg::Model& model, const std::vector<Image::Pointer>& channels, const EngineRequest& r) {
  const auto t0 = Clock::now();
  const sagitta::ModelCard& card = model.card();
  if (channels.empty() || int(channels.size()) != model.in_channels())
    throw ExplainError(fmt::format("model '{}' expects {} channel(s), {} given", card.name, model.in_channels(), channels.size()));
  if (!(r.overlap >= 0 && r.overlap < 1)) throw ExplainError(fmt::format("overlap {} is outside [0, 1)", r.overlap));
  if (r.batch_size < 1) throw ExplainError("batch size must be at least 1");
  const Image& grid = *channels[0];
  const Layout g = make_layout(card, grid, r.overlap, r.sigma_scale);

  Network net;
  net.impl = &model.impl();
  if (r.randomised) {
    net.owned = randomised_copy(model.impl(), r.seed);
    net.impl = net.owned.get();
  }
  const auto dropout = r.uncertainty ? dropout_modules(*net.impl) : std::vector<torch::nn::Module*>{};

  EngineResult result;
  result.windows = int(g.windows.size());
  const torch::Tensor inputs = padded_inputs(channels, g);
  const torch::Tensor fill = inputs.flatten(1).amin(1);  // per channel: background (removal value)
  torch::Tensor region;
  if (r.region) region = g.pad(labels_tensor(*r.region), 0);

  const int classes = model.num_classes();
  std::vector<Image::Pointer> logit_sums, map_sums, map_weights;
  std::vector<torch::Tensor> logit_views, map_views, map_weight_views;
  for (int k = 0; k < classes; ++k) {
    logit_sums.push_back(new_image(grid, g.padded_size, 0.0f));
    logit_views.push_back(view(*logit_sums.back()));
  }
  for (std::size_t i = 0; i < r.labels.size(); ++i) {
    map_sums.push_back(new_image(grid, g.padded_size, 0.0f));
    map_views.push_back(view(*map_sums.back()));
    map_weights.push_back(new_image(grid, g.padded_size, 0.0f));
    map_weight_views.push_back(view(*map_weights.back()));
  }
  result.target_windows.assign(r.labels.size(), 0);
  Image::Pointer entropy_sum;
  torch::Tensor entropy_view;
  if (r.uncertainty) {
    entropy_sum = new_image(grid, g.padded_size, 0.0f);
    entropy_view = view(*entropy_sum);
  }
  Image::Pointer weights = new_image(grid, g.padded_size, 0.0f);
  torch::Tensor weight_view = view(*weights);

  std::vector<std::vector<int64_t>> flips = {{}};
  if (r.mirror || r.uncertainty) {
    const std::vector<int64_t> axes = g.two_d ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{2, 3, 4};
    for (unsigned mask = 1; mask < (1u << axes.size()); ++mask) {
      std::vector<int64_t> f;
      for (unsigned b = 0; b < axes.size(); ++b)
        if (mask & (1u << b)) f.push_back(axes[b]);
      flips.push_back(f);
    }
  }
  int occlusion_size = r.occlusion_size;
  if (occlusion_size <= 0)
    occlusion_size = std::max<int>(4, int(*std::min_element(g.patch.begin() + (g.two_d ? 1 : 0), g.patch.end()) / 8));

  result.decisions.push_back(fmt::format(
      "{} windows of {}x{}x{} (x y z), overlap {}, batch {}{}{}{}", g.windows.size(), g.patch[2], g.patch[1], g.patch[0],
      r.overlap, r.batch_size, r.mirror ? ", mirroring TTA" : "",
      r.labels.empty() ? "" : ", " + method_name(r.method) + (r.method == Method::Occlusion ? fmt::format(" (occluders of {} voxels)", occlusion_size) : " at layer '" + card.gradcam_layer + "'"),
      r.randomised ? ", randomised weights" : ""));
  if (r.uncertainty)
    result.decisions.push_back(fmt::format("uncertainty: predictive entropy over {} mirrored passes{}", flips.size(),
                                           dropout.empty() ? " (no dropout layers: no MC dropout)"
                                                           : fmt::format(" and {} MC dropout samples", r.mc_samples)));

  for (std::size_t first = 0; first < g.windows.size(); first += std::size_t(r.batch_size)) {
    const std::size_t last = std::min(g.windows.size(), first + std::size_t(r.batch_size));
    std::vector<torch::Tensor> batch, regions;
    for (std::size_t w = first; w < last; ++w) {
      batch.push_back(g.region(inputs, w));
      if (region.defined()) regions.push_back(g.region(region, w));
    }
    torch::Tensor x = torch::stack(batch);  // B C z y x
    torch::Tensor reg = region.defined() ? torch::stack(regions) : torch::Tensor();
    if (g.two_d) {
      x = x.squeeze(2);
      if (reg.defined()) reg = reg.squeeze(1);
    }
    BatchResult b;
    try {
      b = run_batch(net, x.contiguous(), reg, r, flips, dropout, occlusion_size, fill);
    } catch (const c10::Error& e) {
      throw ExplainError("model '" + card.name + "' failed on a window: " + first_line(e.what_without_backtrace()));
    }
    result.forward_passes += b.forwards;
    result.backward_passes += b.backwards;
    torch::Tensor logits = b.logits.to(torch::kCPU);
    if (g.two_d) logits = logits.unsqueeze(2);
    if (logits.size(1) != classes)
      throw ExplainError(fmt::format("model '{}' returned {} classes, the card has {}", card.name, logits.size(1), classes));
    logits = logits * g.gauss;
    for (std::size_t w = first; w < last; ++w) {
      const int64_t j = int64_t(w - first);
      for (int k = 0; k < classes; ++k) g.region(logit_views[std::size_t(k)], w).add_(logits[j][k]);
      g.region(weight_view, w).add_(g.gauss);
      if (b.entropy.defined())
        g.region(entropy_view, w).add_((g.two_d ? b.entropy[j].unsqueeze(0) : b.entropy[j]) * g.gauss);
      for (std::size_t i = 0; i < b.maps.size(); ++i) {
        if (!b.has[i][j].item<bool>()) continue;  // a window without the target says nothing about it
        ++result.target_windows[i];
        const torch::Tensor m = g.two_d ? b.maps[i][j].unsqueeze(0) : b.maps[i][j];
        g.region(map_views[i], w).add_(m * g.gauss);
        g.region(map_weight_views[i], w).add_(g.gauss);
      }
    }
    if (r.progress && !r.progress(int(last), int(g.windows.size()))) throw ExplainError("cancelled");
  }

  // Accumulators live on the padded grid; results are copied onto the input grid.
  auto finish = [&](const torch::Tensor& out_view) {
    auto out = new_image(grid, grid.GetLargestPossibleRegion().GetSize(), 0.0f);
    view(*out).copy_(g.crop(out_view));
    return out;
  };
  for (std::size_t k = 0; k < logit_views.size(); ++k) {
    logit_views[k].div_(weight_view);
    result.logits.push_back(finish(logit_views[k]));
  }
  logit_sums.clear();
  for (std::size_t i = 0; i < map_views.size(); ++i) {
    // Voxels no target window covered stay 0.
    const torch::Tensor w = map_weight_views[i];
    map_views[i].copy_(torch::where(w > 0, map_views[i] / w.clamp_min(1e-12), torch::zeros_like(w)));
    result.maps.push_back(finish(map_views[i]));
  }
  if (r.uncertainty) {
    entropy_view.div_(weight_view);
    result.entropy = finish(entropy_view);
  }
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

DeletionCurve deletion_curve(const seg::Model& model, const std::vector<Image::Pointer>& channels, const Image& heatmap,
                             const LabelImage& target, int label, int windows, int steps, double overlap, unsigned seed) {
  DeletionCurve curve;
  const Layout g = make_layout(model.card(), *channels[0], overlap, 1.0 / 8);
  const torch::Tensor inputs = padded_inputs(channels, g);
  const torch::Tensor fill = inputs.flatten(1).amin(1);
  const torch::Tensor heat = g.pad(view(heatmap), 0.0f);
  const torch::Tensor mask = g.pad((labels_tensor(target) != 0).to(torch::kFloat32), 0.0f);
  std::vector<std::pair<double, std::size_t>> counts;
  for (std::size_t w = 0; w < g.windows.size(); ++w) {
    const double c = g.region(mask, w).sum().item<double>();
    if (c > 0) counts.emplace_back(c, w);
  }
  std::sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  if (int(counts.size()) > windows) counts.resize(std::size_t(windows));
  steps = std::max(1, steps);
  for (int i = 0; i <= steps; ++i) curve.fractions.push_back(double(i) / steps);
  curve.scores.assign(curve.fractions.size(), 0.0);
  curve.random_scores.assign(curve.fractions.size(), 0.0);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const seg::Model::Impl& net = model.impl();
  torch::NoGradGuard no_grad;
  for (const auto& [count, w] : counts) {
    const torch::Tensor x = g.region(inputs, w).contiguous();  // C z y x
    const torch::Tensor m = g.region(mask, w).contiguous();
    const torch::Tensor h = g.region(heat, w).contiguous().flatten();
    const int64_t n = h.numel();
    const std::vector<torch::Tensor> orders = {std::get<1>(h.sort(/*stable=*/true, 0, /*descending=*/true)),
                                               torch::randperm(n, gen, torch::kLong)};
    std::vector<double>* targets[2] = {&curve.scores, &curve.random_scores};
    for (int o = 0; o < 2; ++o) {
      std::vector<torch::Tensor> copies;
      for (double f : curve.fractions) {
        torch::Tensor c = x.clone().view({x.size(0), n});
        const int64_t removed = int64_t(std::llround(f * double(n)));
        if (removed > 0)
          for (int64_t ch = 0; ch < c.size(0); ++ch)
            c[ch].index_fill_(0, orders[std::size_t(o)].narrow(0, 0, removed), fill[ch].item<float>());
        copies.push_back(c.view(x.sizes()));
      }
      torch::Tensor batch = torch::stack(copies);
      if (g.two_d) batch = batch.squeeze(2);
      torch::Tensor p = torch::softmax(net.run(batch).logits, 1).select(1, label).to(torch::kCPU);
      if (g.two_d) p = p.unsqueeze(1);
      const torch::Tensor s = (p * m).flatten(1).sum(1) / m.sum();
      const double s0 = s[0].item<double>();
      for (std::size_t i = 0; i < curve.fractions.size(); ++i)
        (*targets[o])[i] += (s0 > 0 ? s[int64_t(i)].item<double>() / s0 : 0.0) / double(counts.size());
    }
  }
  curve.windows = int(counts.size());
  auto area = [&](const std::vector<double>& v) {
    double a = 0;
    for (std::size_t i = 1; i < v.size(); ++i) a += (curve.fractions[i] - curve.fractions[i - 1]) * (v[i] + v[i - 1]) / 2;
    return a;
  };
  curve.area = area(curve.scores);
  curve.random_area = area(curve.random_scores);
  return curve;
}

std::vector<float> explain_patch_raw(const seg::Model& model, const std::vector<float>& input,
                                     const std::vector<std::int64_t>& shape, int label, Method method, ScoreReduction score_r,
                                     const std::vector<std::uint8_t>& region) {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  if (shape.size() != std::size_t(model.dimensions() + 2) || n != int64_t(input.size()))
    throw ExplainError("explain_patch: the input buffer does not match its shape");
  torch::Tensor x = torch::from_blob(const_cast<float*>(input.data()), shape, torch::kFloat32).clone();
  std::vector<int64_t> rshape = shape;
  rshape.erase(rshape.begin() + 1);
  torch::Tensor reg;
  if (!region.empty()) {
    int64_t rn = 1;
    for (auto s : rshape) rn *= s;
    if (int64_t(region.size()) != rn) throw ExplainError("explain_patch: the region does not match the input's shape");
    reg = torch::from_blob(const_cast<std::uint8_t*>(region.data()), rshape, torch::kUInt8).to(torch::kInt32);
  }
  EngineRequest r;
  r.labels = {label};
  r.method = method;
  r.score = score_r;
  Network net;
  net.impl = &model.impl();
  int occlusion_size = std::max<int>(4, int(*std::min_element(shape.begin() + 2, shape.end()) / 8));
  BatchResult b;
  try {
    b = run_batch(net, x, reg, r, {{}}, {}, occlusion_size, x.transpose(0, 1).flatten(1).amin(1));
  } catch (const c10::Error& e) {
    throw ExplainError("model '" + model.card().name + "' failed: " + first_line(e.what_without_backtrace()));
  }
  const torch::Tensor m = b.maps[0].to(torch::kCPU).contiguous();
  return {m.data_ptr<float>(), m.data_ptr<float>() + m.numel()};
}

}  // namespace sagitta::explain::detail

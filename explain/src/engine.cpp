// The torch side of sagitta::explain: one pass over the sliding windows that yields logits, maps
// (Grad-CAM family or occlusion) and entropy; the deletion curve; randomised model copies. The
// windows, their inputs, weights and accumulation are segmentation's engine (window_engine.h), so
// explanations and segmentations see the same windows.
#include "engine.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

#include "model_impl.h"     // segmentation's torch-facing Model (see segmentation/CMakeLists.txt)
#include "window_engine.h"  // segmentation's sliding-window engine (likewise)
#include "sagitta/explain/error.h"
#include "sagitta/segmentation/sliding_window.h"
#include "unet.h"

namespace sagitta::explain::detail {
namespace seg = sagitta::segmentation;
namespace eng = sagitta::segmentation::engine;
namespace {

using Clock = std::chrono::steady_clock;

// Label maps are uint16, which this LibTorch has no dtype for: copied to int32.
torch::Tensor labels_tensor(const LabelImage& image) {
  const auto s = image.GetBufferedRegion().GetSize();
  torch::Tensor t = torch::empty({int64_t(s[2]), int64_t(s[1]), int64_t(s[0])}, torch::kInt32);
  std::copy_n(image.GetBufferPointer(), t.numel(), t.data_ptr<int32_t>());
  return t;
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// Per channel: the minimum (background, the value windows are padded with and voxels removed to).
torch::Tensor channel_minima(const std::vector<torch::Tensor>& inputs) {
  std::vector<torch::Tensor> m;
  for (const auto& c : inputs) m.push_back(c.min());
  return torch::stack(m);
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

// The passes without gradients: the mirrored logits (summed) and the probabilities the entropy
// averages (mirrored passes and MC dropout samples).
void extra_passes(const Network& net, const torch::Tensor& x, const EngineRequest& r, const eng::Flips& flips,
                  const std::vector<torch::nn::Module*>& dropout, torch::Tensor& flip_sum,
                  std::vector<torch::Tensor>& probabilities, int& forwards) {
  torch::NoGradGuard no_grad;
  for (const auto& f : flips) {
    if (f.empty() || !(r.mirror || r.uncertainty)) continue;
    const torch::Tensor y = eng::flipped_logits(*net.impl, x, f);
    ++forwards;
    if (r.mirror) flip_sum = flip_sum.defined() ? flip_sum + y : y;
    if (r.uncertainty) probabilities.push_back(torch::softmax(y, 1));
  }
  if (r.uncertainty && !dropout.empty()) {
    DropoutOn on(dropout);
    for (int i = 0; i < r.mc_samples; ++i) {
      probabilities.push_back(torch::softmax(net.run_logits(x), 1));
      ++forwards;
    }
  }
}

// The unflipped pass: logits, and for the Grad-CAM family the activation with its graph.
seg::ModelOutput main_pass(const Network& net, const torch::Tensor& x, bool cam) {
  if (!cam) {
    torch::NoGradGuard no_grad;
    return {net.run_logits(x), torch::Tensor()};
  }
  // Gradients are needed only down to the activation: the input requires grad so that the graph
  // is recorded even when the model's parameters do not, and autograd::grad stops at the
  // activation (no parameter gradients are computed).
  torch::AutoGradMode grad_on(true);
  const torch::Tensor xg = x.detach().requires_grad_(true);
  seg::ModelOutput o = net.impl->run(xg);
  if (!o.activation.defined() || !o.activation.requires_grad())
    throw ExplainError("model '" + net.impl->card.name + "' returned no activation of layer '" +
                       net.impl->card.gradcam_layer + "' that depends on the input; Grad-CAM needs one");
  return o;
}

// The map of every requested label (B spatial, CPU) and which windows hold its target.
void label_maps(const Network& net, const torch::Tensor& x, const torch::Tensor& region, const EngineRequest& r,
                const seg::ModelOutput& o, const torch::Tensor& averaged, int occlusion_size, const torch::Tensor& fill,
                BatchResult& out) {
  const torch::Tensor predicted = averaged.argmax(1);
  for (const int k : r.labels) {
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
      map = occlusion(net, x, maskf, has, o.logits, fill, k, r.score, occlusion_size, out.forwards);
    } else {
      const torch::Tensor s = score(o.logits, k, maskf, r.score).sum();
      const torch::Tensor g = torch::autograd::grad({s}, {o.activation}, {}, /*retain_graph=*/true)[0];
      ++out.backwards;
      torch::NoGradGuard no_grad;
      map = upsample(cam_from(o.activation.detach(), g, r.method), mask.sizes().slice(1)).to(torch::kCPU);
    }
    out.maps.push_back(map.contiguous());
    out.has.push_back(has);
  }
}

BatchResult run_batch(const Network& net, const torch::Tensor& x, const torch::Tensor& region, const EngineRequest& r,
                      const eng::Flips& flips, const std::vector<torch::nn::Module*>& dropout, int occlusion_size,
                      const torch::Tensor& fill) {
  BatchResult out;
  std::vector<torch::Tensor> probabilities;  // samples for the entropy
  torch::Tensor flip_sum;
  extra_passes(net, x, r, flips, dropout, flip_sum, probabilities, out.forwards);
  const seg::ModelOutput o = main_pass(net, x, !r.labels.empty() && r.method != Method::Occlusion);
  ++out.forwards;
  torch::Tensor averaged = o.logits.detach();
  if (flip_sum.defined()) averaged = (averaged + flip_sum) / double(flips.size());
  out.logits = averaged;
  if (r.uncertainty) {
    probabilities.push_back(torch::softmax(o.logits.detach(), 1));
    const torch::Tensor p = torch::stack(probabilities).mean(0);
    const double norm = std::log(double(std::max<int64_t>(2, p.size(1))));
    out.entropy = (-(p * torch::log(p.clamp_min(1e-12))).sum(1) / norm).to(torch::kCPU);
  }
  if (!r.labels.empty()) label_maps(net, x, region, r, o, averaged, occlusion_size, fill, out);
  return out;
}

// ---- one pass over the windows ------------------------------------------------------------------

// The state of run_windows: the layout, the network (possibly a randomised copy), the inputs and
// the accumulators (logits plus, when asked, the entropy as one more plane; one per label map).
struct Pass {
  const EngineRequest& r;
  const sagitta::ModelCard& card;
  const int classes;
  const eng::Layout g;
  Network net;
  std::vector<torch::nn::Module*> dropout;
  eng::Flips flips;
  int occlusion_size = 0;
  std::vector<torch::Tensor> inputs;
  torch::Tensor fill, region;
  std::unique_ptr<eng::Accumulator> logits;
  std::vector<std::unique_ptr<eng::Accumulator>> maps;

  Pass(const seg::Model& model, const std::vector<Image::Pointer>& channels, const EngineRequest& request)
      : r(request), card(model.card()), classes(model.num_classes()),
        g(eng::make_layout(card, *channels[0], r.overlap, r.sigma_scale)) {
    net.impl = &model.impl();
    if (r.randomised) {
      net.owned = randomised_copy(model.impl(), r.seed);
      net.impl = net.owned.get();
    }
    if (r.uncertainty) dropout = dropout_modules(*net.impl);
    flips = eng::mirror_flips(card, r.mirror || r.uncertainty);
    occlusion_size = r.occlusion_size;
    if (occlusion_size <= 0)
      occlusion_size = std::max<int>(4, int(*std::min_element(g.patch.begin() + (g.two_d ? 1 : 0), g.patch.end()) / 8));
    inputs = eng::padded_inputs(channels, g);
    fill = channel_minima(inputs);
    if (r.region) region = g.pad(labels_tensor(*r.region), 0);
    logits = std::make_unique<eng::Accumulator>(g, *channels[0], classes + (r.uncertainty ? 1 : 0));
    for (std::size_t i = 0; i < r.labels.size(); ++i) maps.push_back(std::make_unique<eng::Accumulator>(g, *channels[0], 1));
  }

  std::vector<std::string> decisions() const {
    std::vector<std::string> d;
    const std::string method =
        r.labels.empty() ? ""
        : ", " + method_name(r.method) +
              (r.method == Method::Occlusion ? fmt::format(" (occluders of {} voxels)", occlusion_size)
                                             : " at layer '" + card.gradcam_layer + "'");
    d.push_back(fmt::format("{} windows of {}x{}x{} (x y z), overlap {}, batch {}{}{}{}", g.windows.size(), g.patch[2],
                            g.patch[1], g.patch[0], r.overlap, r.batch_size, r.mirror ? ", mirroring TTA" : "", method,
                            r.randomised ? ", randomised weights" : ""));
    if (r.uncertainty)
      d.push_back(fmt::format("uncertainty: predictive entropy over {} mirrored passes{}", flips.size(),
                              dropout.empty() ? " (no dropout layers: no MC dropout)"
                                              : fmt::format(" and {} MC dropout samples", r.mc_samples)));
    return d;
  }

  BatchResult run(std::size_t first, std::size_t last) const {
    const torch::Tensor x = g.to_network(g.gather(inputs, first, last)).contiguous();  // B C [D] H W
    const torch::Tensor reg = region.defined() ? g.to_network(g.gather(region, first, last)) : torch::Tensor();
    try {
      return run_batch(net, x, reg, r, flips, dropout, occlusion_size, fill);
    } catch (const c10::Error& e) {
      throw ExplainError("model '" + card.name + "' failed on a window: " + first_line(e.what_without_backtrace()));
    }
  }

  // Windows [first, last) into the accumulators, Gaussian-weighted; a label's map only from the
  // windows that hold its target (the others say nothing about it).
  void accumulate(std::size_t first, std::size_t last, const BatchResult& b, std::vector<long long>& target_windows) {
    torch::Tensor l = g.from_network(b.logits.to(torch::kCPU));
    if (l.size(1) != classes)
      throw ExplainError(fmt::format("model '{}' returned {} classes, the card has {}", card.name, l.size(1), classes));
    l = l * g.gauss;
    for (std::size_t w = first; w < last; ++w) {
      const int64_t j = int64_t(w - first);
      for (int k = 0; k < classes; ++k) logits->add(w, k, l[j][k]);
      logits->add_weight(w);
      if (b.entropy.defined()) logits->add(w, classes, g.from_network(b.entropy[j]) * g.gauss);
      for (std::size_t i = 0; i < b.maps.size(); ++i) {
        if (!b.has[i][j].item<bool>()) continue;
        ++target_windows[i];
        maps[i]->add(w, 0, g.from_network(b.maps[i][j]) * g.gauss);
        maps[i]->add_weight(w);
      }
    }
  }

  // Blocks no window after w adds to, into the accumulators' whole volumes (their tiles freed).
  void release(std::size_t w) {
    logits->release(w);
    for (auto& m : maps) m->release(w, /*zero_uncovered=*/true);
  }

  void finish(EngineResult& result) {
    result.logits = logits->finish();
    if (r.uncertainty) {
      result.entropy = result.logits.back();
      result.logits.pop_back();
    }
    logits.reset();
    // Voxels no target window covered stay 0.
    for (auto& m : maps) result.maps.push_back(m->finish(/*zero_uncovered=*/true).at(0));
    maps.clear();
  }
};

}  // namespace

bool has_dropout(const seg::Model& model) { return !dropout_modules(model.impl()).empty(); }

EngineResult run_windows(const seg::Model& model, const std::vector<Image::Pointer>& channels, const EngineRequest& r) {
  const auto t0 = Clock::now();
  const sagitta::ModelCard& card = model.card();
  if (channels.empty() || int(channels.size()) != model.in_channels())
    throw ExplainError(fmt::format("model '{}' expects {} channel(s), {} given", card.name, model.in_channels(), channels.size()));
  if (const std::string problem = eng::overlap_problem(r.overlap); !problem.empty()) throw ExplainError(problem);
  if (r.batch_size < 1) throw ExplainError("batch size must be at least 1");
  Pass pass(model, channels, r);
  EngineResult result;
  result.windows = int(pass.g.windows.size());
  result.target_windows.assign(r.labels.size(), 0);
  result.decisions = pass.decisions();
  const std::size_t windows = pass.g.windows.size();
  for (std::size_t first = 0; first < windows; first += std::size_t(r.batch_size)) {
    const std::size_t last = std::min(windows, first + std::size_t(r.batch_size));
    const BatchResult b = pass.run(first, last);
    result.forward_passes += b.forwards;
    result.backward_passes += b.backwards;
    pass.accumulate(first, last, b, result.target_windows);
    pass.release(last - 1);
    if (r.progress && !r.progress(int(last), int(windows))) throw ExplainError("cancelled");
  }
  pass.finish(result);
  result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return result;
}

DeletionCurve deletion_curve(const seg::Model& model, const std::vector<Image::Pointer>& channels, const Image& heatmap,
                             const LabelImage& target, int label, int windows, int steps, double overlap, unsigned seed) {
  DeletionCurve curve;
  const eng::Layout g = eng::make_layout(model.card(), *channels[0], overlap, 1.0 / 8);
  const std::vector<torch::Tensor> inputs = eng::padded_inputs(channels, g);
  const torch::Tensor fill = channel_minima(inputs);
  const torch::Tensor heat = g.pad(eng::view(heatmap), 0.0f);
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
    const torch::Tensor x = g.gather(inputs, w, w + 1)[0].contiguous();  // C z y x
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
      const torch::Tensor batch = g.to_network(torch::stack(copies));
      const torch::Tensor p = g.from_network(torch::softmax(net.run(batch).logits, 1).select(1, label).to(torch::kCPU));
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

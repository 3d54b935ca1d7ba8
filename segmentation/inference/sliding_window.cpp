// Sliding-window inference of a volume: checks its inputs and runs its windows through the engine
// (window_engine.h: layout, Gaussian weighting, batching, mirroring TTA, accumulation).
#include "sagitta/segmentation/sliding_window.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/nnunet.h"
#include "window_engine.h"

namespace sagitta::segmentation {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void check_inputs(const Model& model, const std::vector<Image::Pointer>& channels, const SlidingWindowOptions& options) {
  const ModelCard& card = model.card();
  if (channels.empty() || int(channels.size()) != model.in_channels())
    throw SegmentationError(fmt::format("model '{}' expects {} channel(s), {} given", card.name, model.in_channels(),
                                        channels.size()));
  engine::check_overlap(options.overlap);
  if (options.batch_size < 1) throw SegmentationError("batch size must be at least 1");
  const auto size = channels[0]->GetLargestPossibleRegion().GetSize();
  if (size[0] * size[1] * size[2] == 0) throw SegmentationError("the image is empty");
  for (const auto& c : channels)
    if (c->GetLargestPossibleRegion().GetSize() != size)
      throw SegmentationError("the input channels have different sizes");
}

std::vector<std::string> layout_decisions(const engine::Layout& g, const SlidingWindowOptions& options) {
  std::vector<std::string> decisions;
  const auto &patch = g.patch, &volume = g.volume, &padded = g.padded;
  if (g.needs_pad)
    decisions.push_back(fmt::format("volume {}x{}x{} is smaller than the patch {}x{}x{}: padded to {}x{}x{} with {}",
                                    volume[2], volume[1], volume[0], patch[2], patch[1], patch[0], padded[2], padded[1],
                                    padded[0], g.pad_rule == PadRule::Zero ? "0" : "each channel's minimum"));
  decisions.push_back(fmt::format("{} windows of {}x{}x{} (x y z), {} x {} x {} along x y z, overlap {}, batch {}{}",
                                  g.windows.size(), patch[2], patch[1], patch[0], g.starts[2].size(), g.starts[1].size(),
                                  g.starts[0].size(), options.overlap, options.batch_size,
                                  options.mirror ? ", mirroring TTA" : ""));
  const auto rule = [](StepRule r) { return r == StepRule::NnUNet ? "nnU-Net" : r == StepRule::Monai ? "MONAI" : "even"; };
  const auto map = [](ImportanceMap m) {
    return m == ImportanceMap::NnUNet ? "nnU-Net (peak 10, float16)" : m == ImportanceMap::Monai ? "MONAI" : "Sagitta";
  };
  if (options.step_rule != StepRule::Even || options.importance != ImportanceMap::Sagitta)
    decisions.push_back(fmt::format("window rules: {} steps, {} importance map", rule(options.step_rule),
                                    map(options.importance)));
  return decisions;
}

}  // namespace

std::vector<int> window_starts(int size, int patch, double overlap) {
  if (size <= patch) return {0};
  const int step = std::max(1, int(std::floor(double(patch) * (1.0 - overlap))));
  const int count = (size - patch + step - 1) / step + 1;
  std::vector<int> starts;
  for (int i = 0; i < count; ++i)
    starts.push_back(int(std::lround(double(i) * double(size - patch) / double(count - 1))));
  return starts;
}

std::vector<int> window_starts(int size, int patch, double overlap, StepRule rule) {
  if (rule == StepRule::Even) return window_starts(size, patch, overlap);
  if (rule == StepRule::Monai) {  // _get_scan_interval and dense_patch_slices
    const int interval = patch == size ? patch : std::max(int(double(patch) * (1.0 - overlap)), 1);
    std::vector<int> starts;
    for (int k = 0;; ++k) {
      starts.push_back(std::min(k * interval, size - patch));
      if (k * interval + patch >= size) break;
    }
    return starts;
  }
  // 2D models' slice axis (overlap 0, patch 1) gets every slice either way.
  return nnunet::sliding_window_steps(size, patch, 1.0 - overlap);
}

std::vector<float> importance_weights(const std::vector<int>& patch_xyz, double sigma_scale) {
  return importance_weights(patch_xyz, sigma_scale, ImportanceMap::Sagitta);
}

std::vector<float> importance_weights(const std::vector<int>& patch_xyz, double sigma_scale, ImportanceMap mode) {
  if (patch_xyz.size() != 3) throw SegmentationError("importance_weights: the patch needs x y z sizes");
  const torch::Tensor map = engine::importance_map({patch_xyz[2], patch_xyz[1], patch_xyz[0]}, sigma_scale, mode);
  return {map.data_ptr<float>(), map.data_ptr<float>() + map.numel()};
}

namespace {

// The windows of `channels` through the model, batch by batch, into `sums`; after each batch
// `release(last window done)`.
SlidingWindowResult run_windows(const Model& model, const std::vector<Image::Pointer>& channels,
                                const SlidingWindowOptions& options, const engine::Layout& g,
                                engine::Accumulator& sums, const std::function<void(std::size_t)>& release,
                                engine::Accumulator* votes = nullptr) {
  const auto t0 = Clock::now();
  SlidingWindowResult result;
  result.patch = {int(g.patch[2]), int(g.patch[1]), int(g.patch[0])};
  result.windows = int(g.windows.size());
  c10::InferenceMode inference;
  const std::vector<torch::Tensor> inputs = engine::padded_inputs(channels, g);
  result.decisions = layout_decisions(g, options);
  const int classes = model.num_classes();
  const engine::Flips flips = engine::mirror_flips(model.card(), options.mirror);
  engine::ForwardStats stats;
  const std::size_t batch = std::size_t(options.batch_size);
  for (std::size_t first = 0; first < g.windows.size(); first += batch) {
    const std::size_t last = std::min(g.windows.size(), first + batch);
    const torch::Tensor x = g.to_network(g.gather(inputs, first, last));  // B C [D] H W
    torch::Tensor disagreement;
    torch::Tensor logits =
        g.from_network(engine::forward(model.impl(), x, flips, stats, options.fold, votes ? &disagreement : nullptr));
    if (logits.size(1) != classes)
      throw SegmentationError(fmt::format("model '{}' returned {} classes, the card has {}", model.card().name,
                                          logits.size(1), classes));
    for (std::size_t w = first; w < last; ++w) {  // weighted by the Gaussian as they are added
      sums.add_planes(w, logits, int64_t(w - first));
      sums.add_weight(w);
      if (votes) {
        votes->add_planes(w, g.from_network(disagreement), int64_t(w - first));
        votes->add_weight(w);
      }
    }
    release(last - 1);
    if (options.progress && !options.progress(int(last), int(g.windows.size()))) throw SegmentationError("cancelled");
  }
  result.forward_passes = stats.passes;
  result.forward_seconds = stats.seconds;
  result.accumulator_peak_bytes = sums.peak_bytes();
  result.total_seconds = since(t0);
  return result;
}

}  // namespace

SlidingWindowResult sliding_window(const Model& model, const std::vector<Image::Pointer>& channels,
                                   const SlidingWindowOptions& options) {
  check_inputs(model, channels, options);
  const engine::Layout g = engine::make_layout(model.card(), *channels[0], options);
  engine::Accumulator sums(g, *channels[0], model.num_classes(), options.half_sums);
  SlidingWindowResult result =
      run_windows(model, channels, options, g, sums, [&](std::size_t w) { sums.release(w); });
  result.logits = sums.finish();
  return result;
}

namespace engine {

SlidingWindowResult stream_windows(const Model& model, const std::vector<Image::Pointer>& channels,
                                   const SlidingWindowOptions& options, const BlockSink& sink,
                                   const BlockSink& disagreement) {
  check_inputs(model, channels, options);
  const Layout g = make_layout(model.card(), *channels[0], options);
  Accumulator sums(g, *channels[0], model.num_classes(), options.half_sums);
  const bool measure = disagreement && mirror_flips(model.card(), options.mirror).size() > 1;
  std::optional<Accumulator> votes;
  if (measure) votes.emplace(g, *channels[0], 1);
  return run_windows(
      model, channels, options, g, sums,
      [&](std::size_t w) {
        sums.release(w, sink);
        if (votes) votes->release(w, disagreement);
      },
      votes ? &*votes : nullptr);
}

}  // namespace engine

}  // namespace sagitta::segmentation

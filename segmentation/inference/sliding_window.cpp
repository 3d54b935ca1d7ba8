// Sliding-window inference with Gaussian importance weighting, batching and mirroring TTA.
#include "sagitta/segmentation/sliding_window.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "model_impl.h"
#include "sagitta/core/image.h"
#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

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

// A z y x tensor over an image's pixels (no copy).
torch::Tensor view(const Image& image) {
  const auto s = image.GetBufferedRegion().GetSize();
  return torch::from_blob(const_cast<float*>(image.GetBufferPointer()), {int64_t(s[2]), int64_t(s[1]), int64_t(s[0])},
                          torch::kFloat32);
}

// Product of 1D Gaussians centred on the patch, peak 1. Axes of size 1 (2D models) weigh 1.
torch::Tensor importance_map(const std::vector<int64_t>& zyx, double sigma_scale) {
  torch::Tensor map = torch::ones({1}, torch::kFloat64);
  std::vector<torch::Tensor> axes;
  for (int64_t p : zyx) {
    auto i = torch::arange(p, torch::kFloat64);
    const double c = (double(p) - 1) / 2, sigma = std::max(1e-6, sigma_scale * double(p));
    axes.push_back(p == 1 ? torch::ones({1}, torch::kFloat64) : torch::exp(-(i - c).pow(2) / (2 * sigma * sigma)));
  }
  map = axes[0].view({-1, 1, 1}) * axes[1].view({1, -1, 1}) * axes[2].view({1, 1, -1});
  map = map / map.max();
  // Far corners of large patches underflow toward 0; a floor keeps every covered voxel's weight
  // positive so the final division is defined.
  return map.clamp_min(1e-6).to(torch::kFloat32).contiguous();
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

std::vector<float> importance_weights(const std::vector<int>& patch_xyz, double sigma_scale) {
  if (patch_xyz.size() != 3) throw SegmentationError("importance_weights: the patch needs x y z sizes");
  const torch::Tensor map = importance_map({patch_xyz[2], patch_xyz[1], patch_xyz[0]}, sigma_scale);
  return {map.data_ptr<float>(), map.data_ptr<float>() + map.numel()};
}

SlidingWindowResult sliding_window(const Model& model, const std::vector<Image::Pointer>& channels,
                                   const SlidingWindowOptions& options) {
  const auto t0 = Clock::now();
  const ModelCard& card = model.card();
  if (channels.empty() || int(channels.size()) != model.in_channels())
    throw SegmentationError(fmt::format("model '{}' expects {} channel(s), {} given", card.name, model.in_channels(),
                                        channels.size()));
  if (!(options.overlap >= 0 && options.overlap < 1))
    throw SegmentationError(fmt::format("overlap {} is outside [0, 1)", options.overlap));
  if (options.batch_size < 1) throw SegmentationError("batch size must be at least 1");
  const Image& grid = *channels[0];
  const auto size = grid.GetLargestPossibleRegion().GetSize();
  if (size[0] * size[1] * size[2] == 0) throw SegmentationError("the image is empty");
  for (const auto& c : channels)
    if (c->GetLargestPossibleRegion().GetSize() != size)
      throw SegmentationError("the input channels have different sizes");

  SlidingWindowResult result;
  const bool two_d = card.dimensions == 2;
  // Patch as z y x; 2D models see one slice.
  const std::vector<int64_t> patch = {two_d ? 1 : int64_t(card.patch_size[2]), int64_t(card.patch_size[1]),
                                      int64_t(card.patch_size[0])};
  result.patch = {int(patch[2]), int(patch[1]), int(patch[0])};
  const std::vector<int64_t> volume = {int64_t(size[2]), int64_t(size[1]), int64_t(size[0])};
  std::vector<int64_t> padded(3), before(3);
  bool needs_pad = false;
  for (int a = 0; a < 3; ++a) {
    padded[a] = std::max(volume[a], patch[a]);
    before[a] = (padded[a] - volume[a]) / 2;
    needs_pad |= padded[a] != volume[a];
  }

  c10::InferenceMode inference;
  // Inputs as C x Z x Y x X, padded with each channel's minimum when smaller than a patch.
  std::vector<torch::Tensor> inputs;
  for (const auto& c : channels) {
    torch::Tensor v = view(*c);
    if (needs_pad) {
      torch::Tensor p = torch::full({padded[0], padded[1], padded[2]}, v.min().item<float>());
      p.narrow(0, before[0], volume[0]).narrow(1, before[1], volume[1]).narrow(2, before[2], volume[2]).copy_(v);
      v = p;
    }
    inputs.push_back(v);
  }
  if (needs_pad)
    result.decisions.push_back(fmt::format("volume {}x{}x{} is smaller than the patch {}x{}x{}: padded to {}x{}x{} with each channel's minimum",
                                           volume[2], volume[1], volume[0], patch[2], patch[1], patch[0], padded[2],
                                           padded[1], padded[0]));

  // Accumulators: one per class on the padded grid, plus the weights. When no padding is needed
  // they are the outputs themselves.
  const int classes = model.num_classes();
  Image::SizeType padded_size;
  padded_size[0] = itk::SizeValueType(padded[2]), padded_size[1] = itk::SizeValueType(padded[1]),
  padded_size[2] = itk::SizeValueType(padded[0]);
  std::vector<Image::Pointer> sums;
  std::vector<torch::Tensor> sum_views;
  for (int k = 0; k < classes; ++k) {
    sums.push_back(new_image(grid, padded_size, 0.0f));
    sum_views.push_back(view(*sums.back()));
  }
  Image::Pointer weights = new_image(grid, padded_size, 0.0f);
  torch::Tensor weight_view = view(*weights);
  const torch::Tensor gauss = importance_map(patch, options.sigma_scale);

  std::vector<std::vector<int>> starts(3);
  for (int a = 0; a < 3; ++a) starts[a] = window_starts(int(padded[a]), int(patch[a]), two_d && a == 0 ? 0.0 : options.overlap);
  std::vector<std::array<int64_t, 3>> windows;
  for (int z : starts[0])
    for (int y : starts[1])
      for (int x : starts[2]) windows.push_back({z, y, x});
  result.windows = int(windows.size());
  result.decisions.push_back(fmt::format("{} windows of {}x{}x{} (x y z), {} x {} x {} along x y z, overlap {}, batch {}{}",
                                         windows.size(), patch[2], patch[1], patch[0], starts[2].size(), starts[1].size(),
                                         starts[0].size(), options.overlap, options.batch_size,
                                         options.mirror ? ", mirroring TTA" : ""));

  // Mirroring: every subset of the spatial axes (of the network's input, N C [D] H W).
  std::vector<std::vector<int64_t>> flips = {{}};
  if (options.mirror) {
    const std::vector<int64_t> axes = two_d ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{2, 3, 4};
    for (unsigned mask = 1; mask < (1u << axes.size()); ++mask) {
      std::vector<int64_t> f;
      for (unsigned b = 0; b < axes.size(); ++b)
        if (mask & (1u << b)) f.push_back(axes[b]);
      flips.push_back(f);
    }
  }

  const Model::Impl& net = model.impl();
  for (std::size_t first = 0; first < windows.size(); first += std::size_t(options.batch_size)) {
    const std::size_t last = std::min(windows.size(), first + std::size_t(options.batch_size));
    std::vector<torch::Tensor> batch;
    for (std::size_t w = first; w < last; ++w) {
      std::vector<torch::Tensor> cs;
      for (const auto& in : inputs)
        cs.push_back(in.narrow(0, windows[w][0], patch[0]).narrow(1, windows[w][1], patch[1]).narrow(2, windows[w][2], patch[2]));
      batch.push_back(torch::stack(cs));
    }
    torch::Tensor x = torch::stack(batch);  // B C D H W
    if (two_d) x = x.squeeze(2);

    const auto tf = Clock::now();
    torch::Tensor logits;
    for (const auto& f : flips) {
      torch::Tensor y;
      try {
        y = f.empty() ? net.logits(x) : net.logits(x.flip(f)).flip(f);
      } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        throw SegmentationError("model '" + card.name + "' failed on a window: " + what.substr(0, what.find('\n')));
      }
      logits = logits.defined() ? logits.add_(y) : y;
      ++result.forward_passes;
    }
    logits = logits.to(torch::kCPU);
    result.forward_seconds += since(tf);
    if (flips.size() > 1) logits.div_(double(flips.size()));
    if (two_d) logits = logits.unsqueeze(2);
    if (logits.size(1) != classes)
      throw SegmentationError(fmt::format("model '{}' returned {} classes, the card has {}", card.name, logits.size(1), classes));
    logits.mul_(gauss);

    for (std::size_t w = first; w < last; ++w) {
      const auto& s = windows[w];
      auto region = [&](const torch::Tensor& t) {
        return t.narrow(0, s[0], patch[0]).narrow(1, s[1], patch[1]).narrow(2, s[2], patch[2]);
      };
      for (int k = 0; k < classes; ++k) region(sum_views[std::size_t(k)]).add_(logits[int64_t(w - first)][k]);
      region(weight_view).add_(gauss);
    }
    if (options.progress && !options.progress(int(last), int(windows.size())))
      throw SegmentationError("cancelled");
  }

  for (auto& s : sum_views) s.div_(weight_view);
  weights = nullptr;
  if (needs_pad) {
    for (auto& s : sums) {
      auto out = new_image(grid, size, 0.0f);
      view(*out).copy_(view(*s).narrow(0, before[0], volume[0]).narrow(1, before[1], volume[1]).narrow(2, before[2], volume[2]));
      s = out;
    }
  }
  result.logits = std::move(sums);
  result.total_seconds = since(t0);
  return result;
}

}  // namespace sagitta::segmentation

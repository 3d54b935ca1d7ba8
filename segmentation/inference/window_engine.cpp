// The one sliding-window engine: layout, views, padded inputs, forward with mirroring, weighted
// accumulation, the overlap check (see window_engine.h).
#include "window_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "sagitta/core/image.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/sliding_window.h"

namespace sagitta::segmentation::engine {

std::string overlap_problem(double overlap, double maximum) {
  if (overlap >= 0 && overlap <= maximum) return "";
  return fmt::format("overlap {} is outside [0, {}]", overlap, maximum);
}

void check_overlap(double overlap, double maximum) {
  const std::string problem = overlap_problem(overlap, maximum);
  if (!problem.empty()) throw SegmentationError(problem);
}

torch::Tensor view(const Image& image) {
  const auto s = image.GetBufferedRegion().GetSize();
  return torch::from_blob(const_cast<float*>(image.GetBufferPointer()), {int64_t(s[2]), int64_t(s[1]), int64_t(s[0])},
                          torch::kFloat32);
}

// ---- layout ------------------------------------------------------------------------------------

std::vector<int64_t> patch_zyx(const ModelCard& card) {
  return {card.dimensions == 2 ? 1 : int64_t(card.patch_size[2]), int64_t(card.patch_size[1]), int64_t(card.patch_size[0])};
}

torch::Tensor importance_map(const std::vector<int64_t>& zyx, double sigma_scale) {
  std::vector<torch::Tensor> axes;
  for (int64_t p : zyx) {
    auto i = torch::arange(p, torch::kFloat64);
    const double c = (double(p) - 1) / 2, sigma = std::max(1e-6, sigma_scale * double(p));
    axes.push_back(p == 1 ? torch::ones({1}, torch::kFloat64) : torch::exp(-(i - c).pow(2) / (2 * sigma * sigma)));
  }
  torch::Tensor map = axes[0].view({-1, 1, 1}) * axes[1].view({1, -1, 1}) * axes[2].view({1, 1, -1});
  map = map / map.max();
  // Far corners of large patches underflow toward 0; a floor keeps every covered voxel's weight
  // positive so the final division is defined.
  return map.clamp_min(1e-6).to(torch::kFloat32).contiguous();
}

torch::Tensor Layout::pad(const torch::Tensor& v, float value) const {
  if (!needs_pad) return v;
  torch::Tensor p = torch::full({padded[0], padded[1], padded[2]}, value, v.options());
  crop(p).copy_(v);
  return p;
}

torch::Tensor Layout::crop(const torch::Tensor& v) const {
  if (!needs_pad) return v;
  return v.narrow(0, before[0], volume[0]).narrow(1, before[1], volume[1]).narrow(2, before[2], volume[2]);
}

torch::Tensor Layout::region(const torch::Tensor& t, std::size_t w) const {
  const auto& s = windows[w];
  const int64_t d = t.dim() - 3;
  return t.narrow(d, s[0], patch[0]).narrow(d + 1, s[1], patch[1]).narrow(d + 2, s[2], patch[2]);
}

torch::Tensor Layout::gather(const torch::Tensor& t, std::size_t first, std::size_t last) const {
  std::vector<torch::Tensor> blocks;
  for (std::size_t w = first; w < last; ++w) blocks.push_back(region(t, w));
  return torch::stack(blocks);
}

torch::Tensor Layout::gather(const std::vector<torch::Tensor>& channels, std::size_t first, std::size_t last) const {
  std::vector<torch::Tensor> blocks;
  for (std::size_t w = first; w < last; ++w) {
    std::vector<torch::Tensor> cs;
    for (const auto& c : channels) cs.push_back(region(c, w));
    blocks.push_back(torch::stack(cs));
  }
  return torch::stack(blocks);
}

torch::Tensor Layout::to_network(const torch::Tensor& t) const { return two_d ? t.squeeze(t.dim() - 3) : t; }
torch::Tensor Layout::from_network(const torch::Tensor& t) const { return two_d ? t.unsqueeze(t.dim() - 2) : t; }

Layout make_layout(const ModelCard& card, const Image& grid, double overlap, double sigma_scale) {
  Layout g;
  g.two_d = card.dimensions == 2;
  g.patch = patch_zyx(card);
  const auto size = grid.GetLargestPossibleRegion().GetSize();
  g.volume = {int64_t(size[2]), int64_t(size[1]), int64_t(size[0])};
  g.padded.resize(3);
  g.before.resize(3);
  g.starts.resize(3);
  for (int a = 0; a < 3; ++a) {
    g.padded[a] = std::max(g.volume[a], g.patch[a]);
    g.before[a] = (g.padded[a] - g.volume[a]) / 2;
    g.needs_pad |= g.padded[a] != g.volume[a];
    g.padded_size[std::size_t(2 - a)] = itk::SizeValueType(g.padded[a]);
    // 2D models: one window per slice.
    g.starts[a] = window_starts(int(g.padded[a]), int(g.patch[a]), g.two_d && a == 0 ? 0.0 : overlap);
  }
  for (int z : g.starts[0])
    for (int y : g.starts[1])
      for (int x : g.starts[2]) g.windows.push_back({z, y, x});
  g.gauss = importance_map(g.patch, sigma_scale);
  return g;
}

std::vector<torch::Tensor> padded_inputs(const std::vector<Image::Pointer>& channels, const Layout& g) {
  std::vector<torch::Tensor> inputs;
  for (const auto& c : channels) {
    const torch::Tensor v = view(*c);
    inputs.push_back(g.needs_pad ? g.pad(v, v.min().item<float>()) : v);
  }
  return inputs;
}

// ---- forward -----------------------------------------------------------------------------------

Flips mirror_flips(bool two_d, bool mirror) {
  Flips flips = {{}};
  if (!mirror) return flips;
  const std::vector<int64_t> axes = two_d ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{2, 3, 4};
  for (unsigned mask = 1; mask < (1u << axes.size()); ++mask) {
    std::vector<int64_t> f;
    for (unsigned b = 0; b < axes.size(); ++b)
      if (mask & (1u << b)) f.push_back(axes[b]);
    flips.push_back(f);
  }
  return flips;
}

torch::Tensor flipped_logits(const Model::Impl& net, const torch::Tensor& x, const std::vector<int64_t>& f) {
  return f.empty() ? net.logits(x) : net.logits(x.flip(f)).flip(f);
}

torch::Tensor forward(const Model::Impl& net, const torch::Tensor& x, const Flips& flips, ForwardStats& stats) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor logits;
  for (const auto& f : flips) {
    torch::Tensor y;
    try {
      y = flipped_logits(net, x, f);
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      throw SegmentationError("model '" + net.card.name + "' failed on a window: " + what.substr(0, what.find('\n')));
    }
    logits = logits.defined() ? logits.add_(y) : y;
    ++stats.passes;
  }
  logits = logits.to(torch::kCPU);
  stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (flips.size() > 1) logits.div_(double(flips.size()));
  return logits;
}

// ---- accumulation ------------------------------------------------------------------------------

Accumulator::Accumulator(const Layout& layout, const Image& grid, int planes) : layout_(layout), grid_(grid) {
  for (int k = 0; k < planes; ++k) {
    sums_.push_back(sagitta::new_image<Image>(grid, layout.padded_size, 0.0f));
    views_.push_back(view(*sums_.back()));
  }
  weights_ = sagitta::new_image<Image>(grid, layout.padded_size, 0.0f);
  weight_view_ = view(*weights_);
}

void Accumulator::add_planes(std::size_t w, const torch::Tensor& weighted, int64_t b) {
  for (std::size_t k = 0; k < views_.size(); ++k) layout_.region(views_[k], w).add_(weighted[b][int64_t(k)]);
}

std::vector<Image::Pointer> Accumulator::finish(bool zero_uncovered) {
  for (auto& s : views_) {
    if (zero_uncovered)
      s.copy_(torch::where(weight_view_ > 0, s / weight_view_.clamp_min(1e-12), torch::zeros_like(weight_view_)));
    else
      s.div_(weight_view_);
  }
  weight_view_ = torch::Tensor();
  weights_ = nullptr;
  views_.clear();
  // Without padding the sums are the results; else each is cropped onto the input grid.
  if (layout_.needs_pad)
    for (auto& s : sums_) {
      auto out = sagitta::new_image<Image>(grid_, grid_.GetLargestPossibleRegion().GetSize(), 0.0f);
      view(*out).copy_(layout_.crop(view(*s)));
      s = out;
    }
  return std::move(sums_);
}

}  // namespace sagitta::segmentation::engine

// The one sliding-window engine: layout, views, padded inputs, forward with mirroring, weighted
// accumulation, the overlap check (see window_engine.h).
#include "window_engine.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <limits>

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

struct Accumulator::Tile {
  int64_t z0 = 0, nz = 0, y0 = 0, ny = 0;  // on the padded grid; x is whole
  std::size_t last = 0;                    // the last window that adds to it
  bool released = false;
  Image::Pointer buffer;                   // planes + 1 (the weights) x nz x ny x X floats, huge pages
  torch::Tensor sums, weights;             // planes x nz x ny x X and nz x ny x X views of the buffer
};

namespace {

// Tile boundaries along one axis of the padded grid: 0, the end, every window start and end.
std::vector<int64_t> cuts(const std::vector<int>& starts, int64_t patch, int64_t padded) {
  std::vector<int64_t> c = {0, padded};
  for (int s : starts) c.push_back(s), c.push_back(std::min<int64_t>(padded, s + patch));
  std::sort(c.begin(), c.end());
  c.erase(std::unique(c.begin(), c.end()), c.end());
  return c;
}

// The blocks [first, last) between `cuts` that [start, start + length) covers.
std::pair<std::size_t, std::size_t> blocks(const std::vector<int64_t>& cuts, int64_t start, int64_t length) {
  const auto first = std::size_t(std::upper_bound(cuts.begin(), cuts.end(), start) - cuts.begin()) - 1;
  const auto last = std::size_t(std::lower_bound(cuts.begin(), cuts.end(), start + length) - cuts.begin());
  return {first, last};
}

// The part of a tile's [t0, t0 + n) inside the volume ([before, before + size) of the padded
// axis): its first index in the tile, its first index in the volume, its length (0: none).
struct Span {
  int64_t in_tile = 0, in_volume = 0, length = 0;
};
Span inside(int64_t t0, int64_t n, int64_t before, int64_t size) {
  const int64_t a = std::max(t0, before), b = std::min(t0 + n, before + size);
  return b > a ? Span{a - t0, a - before, b - a} : Span{};
}

}  // namespace

Accumulator::Accumulator(const Layout& layout, const Image& grid, int planes)
    : layout_(layout), grid_(grid), planes_(planes) {
  zcuts_ = cuts(layout.starts[0], layout.patch[0], layout.padded[0]);
  ycuts_ = cuts(layout.starts[1], layout.patch[1], layout.padded[1]);
  const std::size_t ny = ycuts_.size() - 1;
  for (std::size_t iz = 0; iz + 1 < zcuts_.size(); ++iz)
    for (std::size_t iy = 0; iy < ny; ++iy) {
      Tile t;
      t.z0 = zcuts_[iz], t.nz = zcuts_[iz + 1] - zcuts_[iz];
      t.y0 = ycuts_[iy], t.ny = ycuts_[iy + 1] - ycuts_[iy];
      tiles_.push_back(std::move(t));
    }
  for (std::size_t w = 0; w < layout.windows.size(); ++w) {
    const auto [z0, z1] = blocks(zcuts_, layout.windows[w][0], layout.patch[0]);
    const auto [y0, y1] = blocks(ycuts_, layout.windows[w][1], layout.patch[1]);
    for (std::size_t iz = z0; iz < z1; ++iz)
      for (std::size_t iy = y0; iy < y1; ++iy) tiles_[iz * ny + iy].last = w;
  }
  release_order_.resize(tiles_.size());
  for (std::size_t t = 0; t < tiles_.size(); ++t) release_order_[t] = t;
  std::stable_sort(release_order_.begin(), release_order_.end(),
                   [&](std::size_t a, std::size_t b) { return tiles_[a].last < tiles_[b].last; });
}

Accumulator::~Accumulator() = default;

Accumulator::Tile& Accumulator::open(std::size_t t) {
  Tile& tile = tiles_[t];
  if (tile.buffer) return tile;
  if (tile.released) throw SegmentationError("internal: a window adds to a block that was already released");
  const int64_t x = layout_.padded[2];
  Image::SizeType size;
  size[0] = itk::SizeValueType(x), size[1] = itk::SizeValueType(tile.ny);
  size[2] = itk::SizeValueType(tile.nz * (planes_ + 1));
  tile.buffer = sagitta::new_image<Image>(grid_, size, 0.0f);
  const torch::Tensor all =
      torch::from_blob(tile.buffer->GetBufferPointer(), {planes_ + 1, tile.nz, tile.ny, x}, torch::kFloat32);
  tile.sums = all.narrow(0, 0, planes_);
  tile.weights = all[planes_];
  bytes_ += std::size_t(all.numel()) * sizeof(float);
  peak_bytes_ = std::max(peak_bytes_, bytes_);
  return tile;
}

template <typename F>
void Accumulator::for_tiles(std::size_t w, F&& f) {
  const auto& s = layout_.windows[w];
  const auto [z0, z1] = blocks(zcuts_, s[0], layout_.patch[0]);
  const auto [y0, y1] = blocks(ycuts_, s[1], layout_.patch[1]);
  const std::size_t ny = ycuts_.size() - 1;
  for (std::size_t iz = z0; iz < z1; ++iz)
    for (std::size_t iy = y0; iy < y1; ++iy) {
      Tile& t = open(iz * ny + iy);
      // The tile lies inside the window along z and y (the cuts include every window's edges).
      f(t, t.z0 - s[0], t.y0 - s[1], int64_t(s[2]));
    }
}

void Accumulator::add(std::size_t w, int k, const torch::Tensor& weighted) {
  const int64_t px = layout_.patch[2];
  for_tiles(w, [&](Tile& t, int64_t oz, int64_t oy, int64_t x0) {
    t.sums[k].narrow(2, x0, px).add_(weighted.narrow(0, oz, t.nz).narrow(1, oy, t.ny));
  });
}

void Accumulator::add_planes(std::size_t w, const torch::Tensor& weighted, int64_t b) {
  const int64_t px = layout_.patch[2];
  const torch::Tensor one = weighted[b];
  for_tiles(w, [&](Tile& t, int64_t oz, int64_t oy, int64_t x0) {
    t.sums.narrow(3, x0, px).add_(one.narrow(1, oz, t.nz).narrow(2, oy, t.ny));
  });
}

void Accumulator::add_weight(std::size_t w) {
  const int64_t px = layout_.patch[2];
  for_tiles(w, [&](Tile& t, int64_t oz, int64_t oy, int64_t x0) {
    t.weights.narrow(2, x0, px).add_(layout_.gauss.narrow(0, oz, t.nz).narrow(1, oy, t.ny));
  });
}

void Accumulator::release(std::size_t w, const BlockSink& sink, bool zero_uncovered) {
  while (done_ < release_order_.size() && tiles_[release_order_[done_]].last <= w) {
    const std::size_t index = release_order_[done_++];
    Tile& t = open(index);  // opens it only if no window touched it (cannot happen: windows cover the grid)
    if (zero_uncovered)
      t.sums.copy_(torch::where(t.weights > 0, t.sums / t.weights.clamp_min(1e-12), torch::zeros_like(t.weights)));
    else
      t.sums.div_(t.weights);
    const Span z = inside(t.z0, t.nz, layout_.before[0], layout_.volume[0]);
    const Span y = inside(t.y0, t.ny, layout_.before[1], layout_.volume[1]);
    if (z.length > 0 && y.length > 0) {
      Block block;
      block.z0 = z.in_volume, block.y0 = y.in_volume;
      block.values = t.sums.narrow(1, z.in_tile, z.length)
                         .narrow(2, y.in_tile, y.length)
                         .narrow(3, layout_.before[2], layout_.volume[2]);
      sink(block);
    }
    bytes_ -= std::size_t(t.sums.numel() + t.weights.numel()) * sizeof(float);
    t.sums = t.weights = torch::Tensor();
    t.buffer = nullptr;
    t.released = true;
  }
}

void Accumulator::release(std::size_t w, bool zero_uncovered) {
  if (whole_.empty())
    for (int k = 0; k < planes_; ++k)
      whole_.push_back(sagitta::new_image<Image>(grid_, grid_.GetLargestPossibleRegion().GetSize(), 0.0f));
  release(
      w,
      [&](const Block& b) {
        for (int k = 0; k < planes_; ++k)
          view(*whole_[std::size_t(k)])
              .narrow(0, b.z0, b.values.size(1))
              .narrow(1, b.y0, b.values.size(2))
              .copy_(b.values[k]);
      },
      zero_uncovered);
}

std::vector<Image::Pointer> Accumulator::finish(bool zero_uncovered) {
  release(std::numeric_limits<std::size_t>::max(), zero_uncovered);
  return std::move(whole_);
}

}  // namespace sagitta::segmentation::engine

// The one sliding-window engine: layout, views, padded inputs, forward with mirroring, weighted
// accumulation, the overlap check (see window_engine.h).
#include "window_engine.h"

#include <fmt/format.h>
#include <ATen/Parallel.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "sagitta/core/image.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/nnunet.h"
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
  if (card.dimensions == 2) return {1, int64_t(card.patch_size[1]), int64_t(card.patch_size[0])};
  // The model grid's axes are the tensor's (model_grid): card axis order[m] is memory axis m.
  const std::array<int, 3> order = card.tensor_order();
  return {int64_t(card.patch_size[std::size_t(order[2])]), int64_t(card.patch_size[std::size_t(order[1])]),
          int64_t(card.patch_size[std::size_t(order[0])])};
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

torch::Tensor importance_map(const std::vector<int64_t>& zyx, double sigma_scale, ImportanceMap map) {
  if (map == ImportanceMap::Sagitta) return importance_map(zyx, sigma_scale);
  if (map == ImportanceMap::Monai) {  // compute_importance_map(mode gaussian), in float32 as MONAI
    torch::Tensor m;
    for (int64_t p : zyx) {
      const double sigma = double(p) * sigma_scale;
      torch::Tensor x = torch::arange(-(double(p) - 1) / 2.0, (double(p) - 1) / 2.0 + 1, torch::kFloat32);
      x = torch::exp(x.pow(2) / (-2 * sigma * sigma));
      m = m.defined() ? m.unsqueeze(-1) * x : x;
    }
    const double floor = std::max(m.min().item<double>(), 1e-3);
    return m.clamp_min(floor).contiguous();
  }
  std::vector<int> tile;
  for (std::size_t a = zyx.size() == 3 && zyx[0] == 1 ? 1 : 0; a < zyx.size(); ++a) tile.push_back(int(zyx[a]));
  std::vector<float> w = nnunet::gaussian_importance(tile, sigma_scale, 10, true);
  return torch::from_blob(w.data(), {zyx[0], zyx[1], zyx[2]}, torch::kFloat32).clone();
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
  SlidingWindowOptions options;
  options.overlap = overlap;
  options.sigma_scale = sigma_scale;
  return make_layout(card, grid, options);
}

Layout make_layout(const ModelCard& card, const Image& grid, const SlidingWindowOptions& options) {
  const double overlap = options.overlap;
  Layout g;
  g.pad_rule = options.pad;
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
    // 2D models: one window per slice.
    g.starts[a] = window_starts(int(g.padded[a]), int(g.patch[a]), g.two_d && a == 0 ? 0.0 : overlap, options.step_rule);
  }
  for (int z : g.starts[0])
    for (int y : g.starts[1])
      for (int x : g.starts[2]) g.windows.push_back({z, y, x});
  // The card says how its windows blend: Gaussian importance (sigma from the caller, else the
  // card's) or a plain average.
  g.gauss = card.window_weights == "constant"
                ? torch::ones({g.patch[0], g.patch[1], g.patch[2]}, torch::kFloat32)
                : importance_map(g.patch, options.sigma_scale > 0 ? options.sigma_scale : card.sigma_scale,
                                 options.importance);
  return g;
}

std::vector<torch::Tensor> padded_inputs(const std::vector<Image::Pointer>& channels, const Layout& g) {
  std::vector<torch::Tensor> inputs;
  for (const auto& c : channels) {
    const torch::Tensor v = view(*c);
    const float value = g.pad_rule == PadRule::Zero ? 0.0f : v.min().item<float>();
    inputs.push_back(g.needs_pad ? g.pad(v, value) : v);
  }
  return inputs;
}

// ---- forward -----------------------------------------------------------------------------------

Flips mirror_flips(bool two_d, bool mirror) { return mirror_flips(two_d, mirror, "xyz", {0, 1, 2}); }

Flips mirror_flips(const ModelCard& card, bool mirror) {
  return mirror_flips(card.dimensions == 2, mirror, card.mirror_axes, card.tensor_order());
}

Flips mirror_flips(bool two_d, bool mirror, const std::string& allowed, const std::array<int, 3>& order) {
  Flips flips = {{}};
  if (!mirror) return flips;
  // Tensor dimensions N C [D] H W: memory axis m (W, H, D) is dimension (two_d ? 3 : 4) - m; it
  // may flip when its card axis is allowed.
  std::vector<int64_t> axes;
  for (int m = two_d ? 1 : 2; m >= 0; --m)
    if (allowed.find(char('x' + order[std::size_t(m)])) != std::string::npos) axes.push_back((two_d ? 3 : 4) - m);
  for (unsigned mask = 1; mask < (1u << axes.size()); ++mask) {
    std::vector<int64_t> f;
    for (unsigned b = 0; b < axes.size(); ++b)
      if (mask & (1u << b)) f.push_back(axes[b]);
    flips.push_back(f);
  }
  // Fewer axes first, as itertools.combinations by size (nnU-Net's order of summation).
  std::stable_sort(flips.begin() + 1, flips.end(), [](const auto& a, const auto& b) { return a.size() < b.size(); });
  return flips;
}

torch::Tensor flipped_logits(const Model::Impl& net, const torch::Tensor& x, const std::vector<int64_t>& f, int fold) {
  return f.empty() ? net.fold_logits(x, fold) : net.fold_logits(x.flip(f), fold).flip(f);
}

namespace {

// A pass's decision per voxel: the argmax over the classes, or for region models each region's sign.
torch::Tensor decision(const Model::Impl& net, const torch::Tensor& logits) {
  return net.card.regions.empty() ? logits.argmax(1, /*keepdim=*/true) : logits.gt(0);
}

}  // namespace

torch::Tensor forward(const Model::Impl& net, const torch::Tensor& x, const Flips& flips, ForwardStats& stats,
                      int fold, torch::Tensor* disagreement) {
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor logits;
  std::vector<torch::Tensor> decisions;
  for (const auto& f : flips) {
    torch::Tensor y;
    try {
      y = flipped_logits(net, x, f, fold);
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      throw SegmentationError("model '" + net.card.name + "' failed on a window: " + what.substr(0, what.find('\n')));
    }
    if (disagreement) decisions.push_back(decision(net, y.to(torch::kCPU)));
    logits = logits.defined() ? logits.add_(y) : y;
    ++stats.passes;
  }
  logits = logits.to(torch::kCPU);
  stats.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (flips.size() > 1) logits.div_(double(flips.size()));
  if (disagreement) {
    const torch::Tensor averaged = decision(net, logits);
    torch::Tensor differ = torch::zeros_like(averaged.select(1, 0).unsqueeze(1), torch::kFloat32);
    for (const auto& d : decisions) differ.add_(d.ne(averaged).any(1, /*keepdim=*/true).to(torch::kFloat32));
    *disagreement = differ.div_(double(flips.size()));
  }
  return logits;
}

// ---- accumulation ------------------------------------------------------------------------------

struct Accumulator::Tile {
  std::array<int64_t, 3> at{}, n{};  // z y x start and size on the padded grid
  std::size_t last = 0;              // the last window that adds to it
  bool released = false;
  torch::Tensor flat;                // the memory: at least (planes + 1) x nz x ny x nx floats
  torch::Tensor buffer;              // planes + 1 (the weights) x nz x ny x nx floats of it
  torch::Tensor sums, weights;       // planes x nz x ny x nx and nz x ny x nx views of the buffer
};

namespace {

// Zeroed floats in their own anonymous mapping, given back to the kernel when the tensor goes:
// tiles come and go by the hundred in sizes around malloc's mmap threshold, where the heap would
// keep freed ones (and the process's RSS) around. Huge pages make the first touch cheap.
torch::Tensor mapped_zeros(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const std::size_t bytes = std::max<std::size_t>(1, std::size_t(n) * sizeof(float));
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw SegmentationError(fmt::format("out of memory: {} MiB for a block of logits", bytes >> 20));
#ifdef MADV_HUGEPAGE
  ::madvise(p, bytes, MADV_HUGEPAGE);
#endif
  return torch::from_blob(p, shape, [bytes](void* q) { ::munmap(q, bytes); }, torch::kFloat32);
}

// Tile boundaries along one axis of the padded grid: 0, the end, every window start and, with
// `ends`, every window end. The last window that adds to a voxel is the one with the largest start
// at or before it, so starts alone give every tile one release time; the ends make a tile open
// only when a window first reaches all of it. z and y cut at both (a tile opened a row of windows
// early would hold a slab of logits for a whole row); x cuts only at starts, so that rows stay
// long (cutting at ends too leaves tiles a few voxels wide) for the price of opening a tile one
// window early.
std::vector<int64_t> cuts(const std::vector<int>& starts, int64_t patch, int64_t padded, bool ends) {
  std::vector<int64_t> c = {0, padded};
  for (int s : starts) {
    c.push_back(s);
    if (ends) c.push_back(std::min<int64_t>(padded, s + patch));
  }
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

Accumulator::Accumulator(const Layout& layout, const Image& grid, int planes, bool half)
    : layout_(layout), grid_(grid), planes_(planes), half_(half) {
  for (int a = 0; a < 3; ++a) cuts_[a] = cuts(layout.starts[std::size_t(a)], layout.patch[a], layout.padded[a], a < 2);
  for (std::size_t iz = 0; iz + 1 < cuts_[0].size(); ++iz)
    for (std::size_t iy = 0; iy + 1 < cuts_[1].size(); ++iy)
      for (std::size_t ix = 0; ix + 1 < cuts_[2].size(); ++ix) {
        Tile t;
        const std::size_t i[3] = {iz, iy, ix};
        for (int a = 0; a < 3; ++a) t.at[a] = cuts_[a][i[a]], t.n[a] = cuts_[a][i[a] + 1] - cuts_[a][i[a]];
        tiles_.push_back(std::move(t));
      }
  for (std::size_t w = 0; w < layout.windows.size(); ++w)
    for_tiles(w, [&](std::size_t t) { tiles_[t].last = w; });
  release_order_.resize(tiles_.size());
  for (std::size_t t = 0; t < tiles_.size(); ++t) release_order_[t] = t;
  std::stable_sort(release_order_.begin(), release_order_.end(),
                   [&](std::size_t a, std::size_t b) { return tiles_[a].last < tiles_[b].last; });
}

Accumulator::~Accumulator() = default;

Accumulator::Tile& Accumulator::open(std::size_t t) {
  Tile& tile = tiles_[t];
  if (tile.buffer.defined()) return tile;
  if (tile.released) throw SegmentationError("internal: a window adds to a block that was already released");
  const int64_t numel = (planes_ + 1) * tile.n[0] * tile.n[1] * tile.n[2];
  // The smallest freed buffer that holds the tile, if it is at most a quarter larger (the
  // window starts are not evenly divisible, so tiles come in several near sizes): zeroing it
  // costs far less than faulting in fresh pages.
  auto pooled = pool_.lower_bound(numel);
  if (pooled != pool_.end() && 4 * pooled->first <= 5 * numel) {
    tile.flat = pooled->second;
    tile.flat.narrow(0, 0, numel).zero_();
    pool_bytes_ -= std::size_t(pooled->first) * sizeof(float);
    pool_.erase(pooled);
  } else {
    tile.flat = mapped_zeros({numel});
  }
  tile.buffer = tile.flat.narrow(0, 0, numel).view({planes_ + 1, tile.n[0], tile.n[1], tile.n[2]});
  tile.sums = tile.buffer.narrow(0, 0, planes_);
  tile.weights = tile.buffer[planes_];
  bytes_ += std::size_t(tile.flat.numel()) * sizeof(float);
  peak_bytes_ = std::max(peak_bytes_, bytes_);
  return tile;
}

template <typename F>
void Accumulator::for_tiles(std::size_t w, F&& f) const {
  const auto& s = layout_.windows[w];
  std::pair<std::size_t, std::size_t> r[3];
  for (int a = 0; a < 3; ++a) r[a] = blocks(cuts_[a], s[std::size_t(a)], layout_.patch[a]);
  const std::size_t ny = cuts_[1].size() - 1, nx = cuts_[2].size() - 1;
  for (std::size_t iz = r[0].first; iz < r[0].second; ++iz)
    for (std::size_t iy = r[1].first; iy < r[1].second; ++iy)
      for (std::size_t ix = r[2].first; ix < r[2].second; ++ix) f((iz * ny + iy) * nx + ix);
}

// into (tile t's planes [c0, c1), or its weights) += the part of window w's `patch` (planes x
// z y x, contiguous float) the tile holds, times the window's Gaussian when `gauss` is given (one
// rounded product, then the sum: what multiplying the patch first and adding it gives, bit for bit;
// this file is built without floating-point contraction). A plain loop over rows: the same one
// float addition per voxel as a tensor add, without a tensor iterator's cost per short row (tiles
// cut a window's rows into pieces of a few voxels).
void Accumulator::add_part(const Tile& t, float* into, const torch::Tensor& patch, std::size_t w, int64_t c0,
                           int64_t c1, const float* gauss) const {
  const auto& s = layout_.windows[w];
  const int64_t pz = patch.size(-3), py = patch.size(-2), px = patch.size(-1);
  const int64_t p[3] = {pz, py, px};
  // The part of the tile the window covers, per axis: its first index in the tile and in the
  // window, and its length (z and y tiles lie wholly inside every window that touches them; x
  // tiles may not, see cuts()).
  int64_t in_tile[3], in_window[3], len[3];
  for (int a = 0; a < 3; ++a) {
    const int64_t lo = std::max(t.at[a], int64_t(s[a])), hi = std::min(t.at[a] + t.n[a], int64_t(s[a]) + p[a]);
    in_tile[a] = lo - t.at[a], in_window[a] = lo - s[a], len[a] = hi - lo;
  }
  const int64_t nz = t.n[0], ny = t.n[1], nx = t.n[2];
  const float* src = patch.data_ptr<float>();
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t z = 0; z < len[0]; ++z)
      for (int64_t y = 0; y < len[1]; ++y) {
        const int64_t wz = in_window[0] + z, wy = in_window[1] + y;
        float* d = into + ((c * nz + in_tile[0] + z) * ny + in_tile[1] + y) * nx + in_tile[2];
        const float* from = src + ((c * pz + wz) * py + wy) * px + in_window[2];
        const float* g = gauss ? gauss + (wz * py + wy) * px + in_window[2] : nullptr;
        const int64_t n = len[2];
        if (half_) {  // a float16 sum: the float addition rounded to half, as torch's in-place add into one
          if (g)
            for (int64_t x = 0; x < n; ++x) {
              const float product = from[x] * g[x];
              d[x] = float(c10::Half(d[x] + product));
            }
          else
            for (int64_t x = 0; x < n; ++x) d[x] = float(c10::Half(d[x] + from[x]));
        } else if (g) {
          for (int64_t x = 0; x < n; ++x) {
            const float product = from[x] * g[x];
            d[x] += product;
          }
        } else {
          for (int64_t x = 0; x < n; ++x) d[x] += from[x];
        }
      }
}

void Accumulator::add(std::size_t w, int k, const torch::Tensor& weighted) {
  const torch::Tensor patch = weighted.to(torch::kFloat32).contiguous().unsqueeze(0);
  for_tiles(w, [&](std::size_t i) {
    Tile& t = open(i);
    add_part(t, t.sums[k].data_ptr<float>(), patch, w, 0, 1);
  });
}

void Accumulator::add_planes(std::size_t w, const torch::Tensor& values, int64_t b) {
  const torch::Tensor one = values[b].to(torch::kFloat32).contiguous();
  const float* gauss = layout_.gauss.data_ptr<float>();
  std::vector<Tile*> touched;
  for_tiles(w, [&](std::size_t i) { touched.push_back(&open(i)); });
  // One parallel region per window, the planes shared out (not one per tile: a fork and join
  // per tile costs more than the additions when the cores are busy).
  at::parallel_for(0, one.size(0), 1, [&](int64_t c0, int64_t c1) {
    for (const Tile* t : touched) add_part(*t, t->sums.data_ptr<float>(), one, w, c0, c1, gauss);
  });
}

void Accumulator::add_weight(std::size_t w) {
  const torch::Tensor patch = layout_.gauss.unsqueeze(0);
  for_tiles(w, [&](std::size_t i) {
    Tile& t = open(i);
    add_part(t, t.weights.data_ptr<float>(), patch, w, 0, 1);
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
    if (half_) t.sums.copy_(t.sums.to(torch::kHalf));
    Span span[3];
    for (int a = 0; a < 3; ++a) span[a] = inside(t.at[a], t.n[a], layout_.before[a], layout_.volume[a]);
    if (span[0].length > 0 && span[1].length > 0 && span[2].length > 0) {
      Block block;
      block.z0 = span[0].in_volume, block.y0 = span[1].in_volume, block.x0 = span[2].in_volume;
      block.values = t.sums.narrow(1, span[0].in_tile, span[0].length)
                         .narrow(2, span[1].in_tile, span[1].length)
                         .narrow(3, span[2].in_tile, span[2].length);
      sink(block);
    }
    const std::size_t freed = std::size_t(t.flat.numel()) * sizeof(float);
    bytes_ -= freed;
    // Kept for a later tile while the pool stays below an eighth of the peak; rows of windows
    // repeat the same few tile shapes, so nearly every later tile comes from here.
    if (pool_bytes_ + freed <= peak_bytes_ / 8) {
      pool_.emplace(t.flat.numel(), t.flat);
      pool_bytes_ += freed;
    }
    t.sums = t.weights = t.buffer = t.flat = torch::Tensor();
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
              .narrow(2, b.x0, b.values.size(3))
              .copy_(b.values[k]);
      },
      zero_uncovered);
}

std::vector<Image::Pointer> Accumulator::finish(bool zero_uncovered) {
  release(std::numeric_limits<std::size_t>::max(), zero_uncovered);
  return std::move(whole_);
}

}  // namespace sagitta::segmentation::engine

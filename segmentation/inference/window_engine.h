#pragma once
// The one sliding-window engine (torch side, private: sagitta::segmentation and, through
// sagitta::segmentation_internal, sagitta::explain). It owns the window layout of a volume (the
// card's patch as z y x, padding of volumes smaller than a patch, window starts, the Gaussian
// importance map), z y x tensor views over ITK images, the padded inputs, the batched forward with
// mirroring, the weighted accumulation of per-window outputs, and the one overlap range check.
// sliding_window() and the explanations run their windows through it; whole-slide inference keeps
// its own pyramidal tiling but takes its weights and forward from here. Includes LibTorch.
#include <torch/torch.h>

#include <array>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model_impl.h"
#include "sagitta/segmentation/images.h"
#include "sagitta/segmentation/sliding_window.h"

namespace sagitta::segmentation::engine {

// ---- overlap -----------------------------------------------------------------------------------

// Volumes: evenly spaced windows; beyond 0.95 the step shrinks to a few voxels and the window count
// explodes. Whole slides: a fixed grid of cells whose windows reach at most a quarter patch into
// each neighbour (margin <= P/4), i.e. an overlap of at most 0.5.
constexpr double kMaxOverlap = 0.95;
constexpr double kMaxSlideOverlap = 0.5;

// The one rule and message: "" when 0 <= overlap <= maximum, else why not (for callers that throw
// their own error type).
std::string overlap_problem(double overlap, double maximum = kMaxOverlap);
// Throws SegmentationError with overlap_problem's message.
void check_overlap(double overlap, double maximum = kMaxOverlap);

// ---- images and tensors ------------------------------------------------------------------------

// A z y x tensor over an image's pixels (no copy).
torch::Tensor view(const Image& image);

// ---- layout ------------------------------------------------------------------------------------

// The card's patch as z y x (2D models see one slice: z = 1).
std::vector<int64_t> patch_zyx(const ModelCard& card);

// Product of 1D Gaussians centred on a z y x patch, sigma = sigma_scale x the axis size, peak 1,
// floored at 1e-6; axes of size 1 weigh 1. Contiguous float z y x.
torch::Tensor importance_map(const std::vector<int64_t>& zyx, double sigma_scale);
// Under `map`: ImportanceMap::NnUNet is nnunet::gaussian_importance over the patch (z = 1 dropped).
torch::Tensor importance_map(const std::vector<int64_t>& zyx, double sigma_scale, ImportanceMap map);

// The windows over one volume: the patch, padding of axes smaller than the patch (centred), the
// evenly spaced window starts (2D models: every slice) and the Gaussian weights of a window.
struct Layout {
  bool two_d = false;
  std::vector<int64_t> patch, volume, padded, before;  // z y x
  bool needs_pad = false;
  PadRule pad_rule = PadRule::ChannelMinimum;
  std::vector<std::vector<int>> starts;                // per axis, z y x
  std::vector<std::array<int64_t, 3>> windows;         // z y x starts, z slowest, x fastest
  torch::Tensor gauss;                                 // z y x

  // A z y x tensor on the padded grid (`value` in the padding).
  torch::Tensor pad(const torch::Tensor& v, float value) const;
  // The volume's part of a padded z y x tensor.
  torch::Tensor crop(const torch::Tensor& v) const;
  // Window w's block of the last three dimensions of `t`.
  torch::Tensor region(const torch::Tensor& t, std::size_t w) const;
  // The blocks of windows [first, last) of `t` (... z y x), stacked: B ... z y x.
  torch::Tensor gather(const torch::Tensor& t, std::size_t first, std::size_t last) const;
  // The same over channels (each z y x): B C z y x.
  torch::Tensor gather(const std::vector<torch::Tensor>& channels, std::size_t first, std::size_t last) const;
  // Between the engine's z y x and a 2D network's y x (the slice axis, third from last, dropped
  // or restored); identity for 3D models.
  torch::Tensor to_network(const torch::Tensor& t) const;
  torch::Tensor from_network(const torch::Tensor& t) const;
};

Layout make_layout(const ModelCard& card, const Image& grid, double overlap, double sigma_scale);
// With the options' overlap, sigma, step rule, importance map and pad rule.
Layout make_layout(const ModelCard& card, const Image& grid, const SlidingWindowOptions& options);

// The model's inputs, z y x per channel, on the padded grid: views of the images when no padding
// is needed (no copy), else padded with each channel's minimum (PadRule::Zero: 0).
std::vector<torch::Tensor> padded_inputs(const std::vector<Image::Pointer>& channels, const Layout& g);

// ---- forward -----------------------------------------------------------------------------------

// Mirroring test-time augmentation: the spatial axes of the network's input (N C [D] H W) to flip
// per pass; {{}} (one unflipped pass) without mirroring, else every subset of the axes, {} first.
using Flips = std::vector<std::vector<int64_t>>;
Flips mirror_flips(bool two_d, bool mirror);
// Only the axes the card allows (card.mirror_axes, array axes) flip.
Flips mirror_flips(const ModelCard& card, bool mirror);
Flips mirror_flips(bool two_d, bool mirror, const std::string& allowed, const std::array<int, 3>& order);

// The network's logits of `x` flipped along `f`, flipped back (`fold`: Model::Impl::fold_logits).
torch::Tensor flipped_logits(const Model::Impl& net, const torch::Tensor& x, const std::vector<int64_t>& f,
                             int fold = -1);

struct ForwardStats {
  int passes = 0;       // network calls
  double seconds = 0;   // time inside the network
};

// Logits of a batch x (network layout) averaged over `flips` (summed in their order), on the CPU.
// A failing network throws SegmentationError naming the model. With `disagreement`: per voxel
// (B 1 [D] H W, float) the share of the flipped passes whose decision differs from the averaged
// logits' one (softmax: the argmax; region models: any region's sign).
torch::Tensor forward(const Model::Impl& net, const torch::Tensor& x, const Flips& flips, ForwardStats& stats,
                      int fold = -1, torch::Tensor* disagreement = nullptr);

// ---- accumulation ------------------------------------------------------------------------------

// A finished block of the input grid: the averaged planes (sums / weights) over voxels
// [z0, z0 + nz) x [y0, y0 + ny) x [x0, x0 + nx). `values` is planes x nz x ny x nx, a view valid
// during the sink's call.
struct Block {
  int64_t z0 = 0, y0 = 0, x0 = 0;
  torch::Tensor values;
};
using BlockSink = std::function<void(const Block&)>;

// Weighted sums of per-window planes and the sum of the weights, kept in tiles of the padded grid
// (z and y cut at every window start and end, x at every start) that exist only between the first and the last
// window that adds to them. With windows visited z-slowest and released as they finish, the
// memory is about the overlap of two rows of windows (patch depth minus step) x planes, not the
// volume x planes: 117 classes cost what a few did. Per voxel the additions happen in window order, exactly as into
// one volume-sized buffer, so the results are bit for bit those of the whole-volume accumulation.
class Accumulator {
public:
  // `half`: every sum, weight and quotient rounded to float16 as it is made (nnU-Net's predictor).
  Accumulator(const Layout& layout, const Image& grid, int planes, bool half = false);
  ~Accumulator();
  Accumulator(const Accumulator&) = delete;
  Accumulator& operator=(const Accumulator&) = delete;

  // Adds `weighted` (z y x, already multiplied by the Gaussian) to plane k over window w.
  void add(std::size_t w, int k, const torch::Tensor& weighted);
  // Adds every plane of `values` (B x planes x z y x, batch entry b) times the layout's Gaussian
  // over window w (the product rounded before the sum, as multiplying first would).
  void add_planes(std::size_t w, const torch::Tensor& values, int64_t b);
  // Adds the Gaussian to the weights over window w.
  void add_weight(std::size_t w);
  // Hands every block that no window after `w` adds to, finished, to `sink` (z then y order) and
  // frees its tiles. Voxels no window covered: 0 when `zero_uncovered`, else every voxel must have
  // been covered.
  void release(std::size_t w, const BlockSink& sink, bool zero_uncovered = false);
  // The same into whole images on the input grid, one per plane, that the accumulator keeps for
  // finish(): callers that want whole volumes release after each batch, so that the tiles never
  // add up to a second copy of the volume.
  void release(std::size_t w, bool zero_uncovered = false);
  // Every remaining block into those whole images, which it returns (blocks released to a sink
  // before are 0 there). The accumulator is spent.
  std::vector<Image::Pointer> finish(bool zero_uncovered = false);
  // The most bytes open tiles held at once (released buffers kept for reuse add at most an eighth).
  std::size_t peak_bytes() const { return peak_bytes_; }

private:
  struct Tile;
  // Tile t's sums and weights, allocated (zeroed) on first use.
  Tile& open(std::size_t t);
  // f(tile index) for every tile window w touches.
  template <typename F>
  void for_tiles(std::size_t w, F&& f) const;
  // `into` (tile t's sums, one of its planes, or its weights) planes [c0, c1) += the part of
  // window w's `patch` (planes x z y x, contiguous float) the tile holds, times `gauss` (the
  // layout's, z y x) when given.
  void add_part(const Tile& t, float* into, const torch::Tensor& patch, std::size_t w, int64_t c0, int64_t c1,
                const float* gauss = nullptr) const;

  const Layout& layout_;
  const Image& grid_;
  const int planes_;
  const bool half_;
  std::vector<int64_t> cuts_[3];        // tile boundaries on the padded grid, z y x
  std::vector<Tile> tiles_;             // z-block major, x fastest
  std::vector<std::size_t> release_order_;  // tiles by their last window
  std::size_t done_ = 0;                   // tiles of release_order_ released so far
  std::vector<Image::Pointer> whole_;      // release() without a sink, and finish()
  std::multimap<int64_t, torch::Tensor> pool_;  // released tile buffers by size, for reuse
  std::size_t bytes_ = 0, peak_bytes_ = 0, pool_bytes_ = 0;
};

// ---- streaming ---------------------------------------------------------------------------------

// sliding_window() without the whole volume's logits: each block of averaged logits (classes x
// z y x) goes to `sink` as soon as no later window adds to it; result.logits stays empty.
// With `disagreement` (called only when mirroring runs more than one pass): blocks of forward()'s
// disagreement, Gaussian-weighted over the windows like the logits (1 x z y x), as they finish.
SlidingWindowResult stream_windows(const Model& model, const std::vector<Image::Pointer>& channels,
                                   const SlidingWindowOptions& options, const BlockSink& sink,
                                   const BlockSink& disagreement = {});

}  // namespace sagitta::segmentation::engine

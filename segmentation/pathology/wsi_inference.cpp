// Tiled whole-slide inference: windows at the model's resolution, decoded by reader threads while
// the network runs, Gaussian-blended and stitched band by band into a pyramidal TIFF label mask.
//
// Windows sit on a fixed grid aligned with output "cells" of stride S: window (i, j) covers its
// cell plus a margin m on every side (patch P = S + 2m). Unlike the volume sliding window (evenly
// spaced starts), the fixed grid lets rows of the mask be finished in order: once window row i
// is done, everything above row i's bottom margin is final. The blending is the volume sliding
// window's (window_engine.h): logits from the engine's forward, weighted by its Gaussian
// importance map (sigma = P/8, peak 1, floor 1e-6) and summed; the label is the argmax of the
// weighted sums (dividing by the summed weights does not change it). Memory: the windows in flight, a band of cells for the row being run (allocated only
// where windows ran), the 2m-row carry of the previous row, and one row of labels per pyramid level.
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>
#include <unistd.h>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/wsi.h"
#include "window_engine.h"
#include "wsi_internal.h"

namespace sagitta::segmentation::wsi {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

fs::path temp_beside(const fs::path& path) {
  return path.parent_path() / ("." + path.filename().string() + ".partial-" + std::to_string(::getpid()));
}

void write_json_atomically(const fs::path& path, const json& j) {
  const fs::path tmp = temp_beside(path);
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f.flush()) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw SegmentationError("cannot write " + path.string() + " (disk full?)");
    }
  }
  fs::rename(tmp, path);
}

float normalise(float v, const Normalization& n) {
  switch (n.scheme) {
    case Normalization::Scheme::CT: return float((std::clamp(double(v), n.clip_low, n.clip_high) - n.mean) / n.std);
    case Normalization::Scheme::Fixed: return float((double(v) - n.mean) / n.std);
    default: return v;
  }
}

// Reader threads produce windows in any order; the consumer takes them strictly in sequence, so
// the result does not depend on thread timing. At most `capacity` windows are in flight.
class Pipeline {
public:
  using Make = std::function<std::vector<float>(std::size_t)>;
  Pipeline(int threads, std::size_t capacity, std::size_t count, Make make)
      : slots_(capacity), count_(count), make_(std::move(make)) {
    for (int t = 0; t < std::max(1, threads); ++t) workers_.emplace_back([this] { work(); });
  }
  ~Pipeline() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
  }
  std::vector<float> take(std::size_t k) {
    std::unique_lock<std::mutex> lock(mutex_);
    Slot& s = slots_[k % slots_.size()];
    cv_.wait(lock, [&] { return s.ready && s.index == k; });
    s.ready = false;
    consumed_ = k + 1;
    cv_.notify_all();
    if (s.error) std::rethrow_exception(s.error);
    return std::move(s.data);
  }

private:
  struct Slot {
    std::size_t index = 0;
    bool ready = false;
    std::vector<float> data;
    std::exception_ptr error;
  };
  void work() {
    while (true) {
      std::size_t k;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || next_ >= count_ || next_ < consumed_ + slots_.size(); });
        if (stop_ || next_ >= count_) return;
        k = next_++;
      }
      Slot produced;
      produced.index = k;
      try {
        produced.data = make_(k);
      } catch (...) {
        produced.error = std::current_exception();
      }
      produced.ready = true;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        slots_[k % slots_.size()] = std::move(produced);
      }
      cv_.notify_all();
    }
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  std::size_t count_, next_ = 0, consumed_ = 0;
  bool stop_ = false;
  Make make_;
  std::vector<std::thread> workers_;
};

// The output grid and the window grid of one slide for one model.
struct Tiling {
  double target_mpp = 0, slide_mpp = 0;
  std::string mpp_source = "file";
  double d = 0;   // level-0 pixels per output pixel
  int level = 0;  // the slide level read
  double r = 0;   // pixels of that level per output pixel
  int px = 0, py = 0, mx = 0, my = 0, sx = 0, sy = 0;  // patch, margin, stride
  int width = 0, height = 0, cols = 0, rows = 0;       // output pixels, window grid
};

// What the model allows (checked before the slide is opened): resolution, overlap, patch.
Tiling model_tiling(const ModelCard& card, const WsiOptions& o) {
  if (card.dimensions != 2 || card.channels.size() != 3)
    throw SegmentationError(fmt::format("model {}: whole-slide segmentation needs a 2D model with 3 (RGB) input "
                                        "channels; this one is {}D with {} channel(s)",
                                        card.name, card.dimensions, card.channels.size()));
  Tiling t;
  t.target_mpp = o.target_mpp ? *o.target_mpp : card.microns_per_pixel.value_or(0);
  if (!(t.target_mpp > 0))
    throw SegmentationError("model " + card.name +
                            ": its card has no 'microns_per_pixel' (the resolution it was trained at); add it or give "
                            "--mpp");
  engine::check_overlap(o.overlap, engine::kMaxSlideOverlap);
  t.px = card.patch_size[0], t.py = card.patch_size[1];
  if (t.px % 16 || t.py % 16)
    throw SegmentationError(fmt::format("model {}: whole-slide tiling needs a patch size that is a multiple of 16 ({}x{})",
                                        card.name, t.px, t.py));
  // Margins are multiples of 8 so that the stride P - 2m stays a multiple of 16.
  auto margin = [&](int p) { return std::min(p / 4, int(std::lround(double(p) * o.overlap / 2 / 8)) * 8); };
  t.mx = margin(t.px), t.my = margin(t.py), t.sx = t.px - 2 * t.mx, t.sy = t.py - 2 * t.my;
  return t;
}

// The slide's side: its resolution, the level read and the output grid.
void slide_tiling(Tiling& t, const Slide& slide, const fs::path& slide_path, const WsiOptions& o) {
  const SlideInfo& info = slide.info();
  if (info.mpp_x && info.mpp_y) {
    t.slide_mpp = std::sqrt(*info.mpp_x * *info.mpp_y);
  } else if (o.assume_mpp) {
    t.slide_mpp = *o.assume_mpp;
    t.mpp_source = "assumed (--assume-mpp)";
  } else {
    throw SegmentationError("slide " + slide_path.string() +
                            ": the file gives no resolution (microns per pixel); give --assume-mpp if you know it");
  }
  // Output grid: one pixel per target_mpp; read from the best level and resample by r.
  t.d = t.target_mpp / t.slide_mpp;
  t.level = slide.best_level(t.d);
  t.r = t.d / info.levels[std::size_t(t.level)].downsample;
  t.width = int(std::ceil(double(info.levels[0].width) / t.d));
  t.height = int(std::ceil(double(info.levels[0].height) / t.d));
  t.cols = (t.width + t.sx - 1) / t.sx, t.rows = (t.height + t.sy - 1) / t.sy;
}

// Windows to run, row by row: those whose centre cell holds enough tissue.
std::vector<std::pair<int, int>> tissue_windows(const Tiling& t, const TissueMask& tissue, double min_fraction) {
  std::vector<std::pair<int, int>> windows;
  const double d = t.d;
  for (int i = 0; i < t.rows; ++i)
    for (int j = 0; j < t.cols; ++j) {
      const double f = tissue.fraction(double(j) * t.sx * d, double(i) * t.sy * d, double(j + 1) * t.sx * d,
                                       double(i + 1) * t.sy * d);
      if (f >= min_fraction && f > 0) windows.emplace_back(i, j);
    }
  return windows;
}

// The output folder, cleared of the leftovers of a run that was killed (temporary names carry the
// dead process's id).
void prepare_folder(const fs::path& folder) {
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw SegmentationError("cannot create " + folder.string() + ": " + ec.message());
  for (const auto& e : fs::directory_iterator(folder, ec))
    if (e.path().filename().string().rfind(".", 0) == 0 && e.path().filename().string().find(".partial-") != std::string::npos)
      fs::remove(e.path(), ec);
}

PyramidTiffOptions mask_options(const ModelCard& card, int classes, const Tiling& t, const WsiOptions& o,
                                const fs::path& slide_path) {
  PyramidTiffOptions tiff_options;
  tiff_options.tile = o.tiff_tile;
  tiff_options.mpp = t.target_mpp;
  tiff_options.palette.assign(std::size_t(classes), {160, 160, 160});
  for (const auto& l : card.labels)
    if (l.value < classes) tiff_options.palette[std::size_t(l.value)] = l.color;
  std::string names;
  for (const auto& l : card.labels) names += fmt::format("{}{}={}", names.empty() ? "" : ",", l.value, l.name);
  tiff_options.description = fmt::format("Sagitta label mask of {}; model {} {} (sha256 {}); {} um/px; labels {}",
                                         slide_path.filename().string(), card.name, card.version, card.sha256,
                                         t.target_mpp, names);
  return tiff_options;
}

// Blends windows (Gaussian-weighted logits) into a band of cells for the window row being run and
// finishes the mask row by row: labels to the writer, the bottom 2m rows carried to the next row.
class Stitcher {
public:
  Stitcher(const Tiling& t, int classes, const std::vector<float>& gauss, PyramidTiffWriter& writer)
      : t_(t), classes_(classes), gauss_(gauss), writer_(writer), planes_(std::size_t(classes) + 1),
        band_plane_(std::size_t(t.py) * t.sx), carry_plane_(std::size_t(2 * t.my) * t.sx),
        row_stride_(std::size_t(t.cols) * t.sx), band_(std::size_t(t.cols)), carry_(std::size_t(t.cols)),
        next_carry_(std::size_t(t.cols)), row_labels_(std::size_t(t.sy) * row_stride_),
        class_pixels_(std::size_t(classes), 0), finalized_(std::size_t(t.cols), 0) {}

  // Window (row, j)'s logits, classes x py x px.
  void accumulate(int j, const float* logits);
  // Cells left of column j have all their windows of this row.
  void finalize_before(int j) {
    for (int c = 0; c < j; ++c)
      if (!finalized_[std::size_t(c)]) finalize(c);
  }
  // Window row i finished: its label rows go to the writer, its carry becomes the next row's.
  void finish_row(int i);
  const std::vector<long long>& class_pixels() const { return class_pixels_; }

private:
  void finalize(int c);
  std::uint8_t label_at(const std::vector<float>& b, const std::vector<float>& cp, int y, int x) const;

  const Tiling& t_;
  const int classes_;
  const std::vector<float>& gauss_;
  PyramidTiffWriter& writer_;
  const std::size_t planes_, band_plane_, carry_plane_, row_stride_;  // planes: class sums + weight
  std::vector<std::vector<float>> band_, carry_, next_carry_;
  std::vector<std::uint8_t> row_labels_;
  std::vector<long long> class_pixels_;
  std::vector<char> finalized_;
};

void Stitcher::accumulate(int j, const float* logits) {
  const int px = t_.px, py = t_.py, sx = t_.sx;
  const int ox = j * sx - t_.mx;
  for (int c = std::max(0, j - 1); c <= std::min(t_.cols - 1, j + 1); ++c) {
    const int x0 = std::max(ox, c * sx), x1 = std::min(ox + px, (c + 1) * sx);
    if (x1 <= x0) continue;
    auto& b = band_[std::size_t(c)];
    if (b.empty()) b.assign(planes_ * band_plane_, 0.0f);
    for (int y = 0; y < py; ++y)
      for (int x = x0; x < x1; ++x) {
        const std::size_t src = std::size_t(y) * px + std::size_t(x - ox);
        const std::size_t dst = std::size_t(y) * sx + std::size_t(x - c * sx);
        const float g = gauss_[src];
        for (int k = 0; k < classes_; ++k)
          b[std::size_t(k) * band_plane_ + dst] += g * logits[std::size_t(k) * py * px + src];
        b[std::size_t(classes_) * band_plane_ + dst] += g;
      }
  }
}

// The argmax of the weighted sums at (y, x) of a cell (band plus carried rows); 0 where no window
// covered the pixel.
std::uint8_t Stitcher::label_at(const std::vector<float>& b, const std::vector<float>& cp, int y, int x) const {
  const int sx = t_.sx;
  auto value = [&](std::size_t k) {
    float v = b.empty() ? 0.0f : b[k * band_plane_ + std::size_t(y) * sx + x];
    if (!cp.empty() && y < 2 * t_.my) v += cp[k * carry_plane_ + std::size_t(y) * sx + x];
    return v;
  };
  if (!(value(std::size_t(classes_)) > 0)) return 0;
  int best = 0;
  float best_v = value(0);
  for (int k = 1; k < classes_; ++k) {
    const float v = value(std::size_t(k));
    if (v > best_v) best_v = v, best = k;
  }
  return std::uint8_t(best);
}

// Cell column c of the current window row: labels of its top sy rows, its bottom 2m rows carried on.
void Stitcher::finalize(int c) {
  const int sx = t_.sx, sy = t_.sy, my = t_.my;
  auto& b = band_[std::size_t(c)];
  auto& cp = carry_[std::size_t(c)];
  for (int y = 0; y < sy; ++y) {
    std::uint8_t* dst = &row_labels_[std::size_t(y) * row_stride_ + std::size_t(c) * sx];
    if (b.empty() && (cp.empty() || y >= 2 * my)) {
      std::fill_n(dst, sx, std::uint8_t(0));
      continue;
    }
    for (int x = 0; x < sx; ++x) dst[x] = label_at(b, cp, y, x);
  }
  auto& nc = next_carry_[std::size_t(c)];
  nc.clear();
  if (!b.empty() && my > 0) {
    nc.resize(planes_ * carry_plane_);
    for (std::size_t k = 0; k < planes_; ++k)
      std::copy_n(&b[k * band_plane_ + std::size_t(sy) * sx], carry_plane_, &nc[k * carry_plane_]);
  }
  std::vector<float>().swap(b);
  std::vector<float>().swap(cp);
  finalized_[std::size_t(c)] = 1;
}

void Stitcher::finish_row(int i) {
  finalize_before(t_.cols);
  const int first = i * t_.sy - t_.my;  // output row of row_labels' first row
  const int y0 = std::max(0, -first), y1 = std::min(t_.sy, t_.height - first);
  if (y1 > y0) {
    writer_.push_rows(&row_labels_[std::size_t(y0) * row_stride_], y1 - y0, row_stride_);
    for (int y = y0; y < y1; ++y)
      for (int x = 0; x < t_.width; ++x) ++class_pixels_[row_labels_[std::size_t(y) * row_stride_ + std::size_t(x)]];
  }
  carry_.swap(next_carry_);
  for (auto& v : next_carry_) std::vector<float>().swap(v);
  std::fill(finalized_.begin(), finalized_.end(), 0);
}

// Runs the windows in batches of one window row, through the engine's forward, into the stitcher;
// returns the seconds spent in the network.
double run_windows(const Model& model, const Tiling& t, const std::vector<std::pair<int, int>>& windows,
                   Pipeline& pipeline, Stitcher& stitcher, const WsiOptions& o) {
  const std::string& name = model.card().name;
  const int classes = model.num_classes(), batch = std::max(1, o.batch_size);
  const engine::Flips unflipped = engine::mirror_flips(true, false);
  engine::ForwardStats stats;
  c10::InferenceMode inference;
  std::size_t k = 0;
  for (int i = 0; i <= t.rows; ++i) {
    while (k < windows.size() && windows[k].first == i) {
      std::vector<std::size_t> ids;
      while (k < windows.size() && windows[k].first == i && int(ids.size()) < batch) ids.push_back(k++);
      torch::Tensor x = torch::empty({int64_t(ids.size()), 3, t.py, t.px}, torch::kFloat32);
      for (std::size_t b = 0; b < ids.size(); ++b) {
        const std::vector<float> tile = pipeline.take(ids[b]);
        std::copy(tile.begin(), tile.end(), x.data_ptr<float>() + b * tile.size());
      }
      const torch::Tensor y = engine::forward(model.impl(), x, unflipped, stats).to(torch::kFloat32).contiguous();
      if (y.dim() != 4 || y.size(1) != classes || y.size(2) != t.py || y.size(3) != t.px)
        throw SegmentationError("model " + name + ": unexpected logits shape for a " + std::to_string(t.px) + "x" +
                                std::to_string(t.py) + " window");
      const float* yp = y.data_ptr<float>();
      for (std::size_t b = 0; b < ids.size(); ++b)
        stitcher.accumulate(windows[ids[b]].second, yp + b * std::size_t(classes) * t.py * t.px);
      // Cells left of the last window's left neighbour have all their windows.
      stitcher.finalize_before(windows[ids.back()].second);
      if (o.progress && !o.progress((long long)k, (long long)windows.size())) throw Stopped();
    }
    stitcher.finish_row(i);
  }
  return stats.seconds;
}

struct Timings {
  double total = 0, tissue = 0, inference = 0, forward = 0;
};

json summary_json(const ModelCard& card, const fs::path& slide_path, const SlideInfo& info, const Tiling& t,
                  const TissueMask& tissue, long long segmented, const std::vector<long long>& class_pixels,
                  const std::vector<std::pair<int, int>>& level_sizes, const SlideOutputs& out, const WsiOptions& o,
                  const Timings& s) {
  const double px_area_mm2 = (t.target_mpp / 1000) * (t.target_mpp / 1000);
  const double tissue_px_mm = tissue.downsample * t.slide_mpp / 1000;
  const long long tissue_pixels = std::count(tissue.mask.begin(), tissue.mask.end(), std::uint8_t(1));
  const long long total_windows = (long long)t.rows * t.cols;
  json class_json = json::array();
  for (int k = 0; k < int(class_pixels.size()); ++k) {
    std::string name = fmt::format("label_{}", k);
    for (const auto& l : card.labels)
      if (l.value == k) name = l.name;
    class_json.push_back({{"value", k}, {"name", name}, {"pixels", class_pixels[std::size_t(k)]},
                          {"area_mm2", double(class_pixels[std::size_t(k)]) * px_area_mm2}});
  }
  json levels_json = json::array();
  for (const auto& [w, h] : level_sizes) levels_json.push_back({w, h});
  json slide_levels = json::array();
  for (const auto& l : info.levels) slide_levels.push_back({{"width", l.width}, {"height", l.height}, {"downsample", l.downsample}});
  return {
      {"slide", fs::absolute(slide_path).string()},
      {"name", slide_name(slide_path)},
      {"vendor", info.vendor},
      {"levels", slide_levels},
      {"mpp", t.slide_mpp},
      {"mpp_source", t.mpp_source},
      {"objective_power", info.objective_power ? json(*info.objective_power) : json(nullptr)},
      {"model", {{"name", card.name}, {"version", card.version}, {"sha256", card.sha256}, {"card", card.path.string()}}},
      {"inference",
       {{"mpp", t.target_mpp}, {"level", t.level}, {"level_downsample", info.levels[std::size_t(t.level)].downsample},
        {"resample", t.r}, {"size", {t.width, t.height}}, {"window", {t.px, t.py}}, {"stride", {t.sx, t.sy}},
        {"margin", {t.mx, t.my}}, {"blending", "gaussian importance map (sigma = patch/8), as the volume sliding window"},
        {"batch_size", o.batch_size}, {"reader_threads", o.reader_threads}}},
      {"tiles", {{"total", total_windows}, {"segmented", segmented}, {"background_skipped", total_windows - segmented}}},
      {"tissue", {{"threshold", tissue.threshold}, {"fraction", tissue.tissue_fraction()},
                  {"area_mm2", double(tissue_pixels) * tissue_px_mm * tissue_px_mm},
                  {"mask_size", {tissue.width, tissue.height}}, {"mask_downsample", tissue.downsample},
                  {"picture", out.tissue_picture.filename().string()}}},
      {"classes", class_json},
      {"mask", {{"file", out.mask.filename().string()}, {"levels", levels_json}, {"mpp", t.target_mpp}, {"tile", o.tiff_tile}}},
      {"annotations", {{"file", out.annotations.filename().string()}, {"format", "QuPath GeoJSON, level-0 pixels"}}},
      {"settings", output_settings(card, o)},
      // Timings differ between runs; everything else in the summary is a function of the inputs.
      {"timing", {{"seconds", s.total}, {"tissue_seconds", s.tissue}, {"inference_seconds", s.inference},
                  {"forward_seconds", s.forward},
                  {"tiles_per_second", s.inference > 0 ? double(segmented) / s.inference : 0.0}}},
  };
}

}  // namespace

SlideOutputs SlideOutputs::in(const fs::path& folder) {
  return {folder / "mask.tiff", folder / "tissue.png", folder / "annotations.geojson", folder / "summary.json"};
}

json output_settings(const ModelCard& card, const WsiOptions& o) {
  const double mpp = o.target_mpp ? *o.target_mpp : card.microns_per_pixel.value_or(0);
  return {{"model_sha256", card.sha256},
          {"mpp", mpp},
          {"overlap", o.overlap},
          {"min_tissue_fraction", o.min_tissue_fraction},
          {"tiff_tile", o.tiff_tile},
          {"tissue", {{"max_side", o.tissue.max_side}, {"min_saturation", o.tissue.min_saturation},
                      {"closing_radius", o.tissue.closing_radius}, {"opening_radius", o.tissue.opening_radius}}}};
}

json segment_slide(const Model& model, const fs::path& slide_path, const fs::path& folder, const WsiOptions& o) {
  const auto t_start = Clock::now();
  const ModelCard& card = model.card();
  Tiling t = model_tiling(card, o);
  const Slide slide = Slide::open(slide_path);
  slide_tiling(t, slide, slide_path, o);
  Timings timings;
  const auto t_tissue = Clock::now();
  const TissueMask tissue = detect_tissue(slide, o.tissue);
  timings.tissue = since(t_tissue);
  const std::vector<std::pair<int, int>> windows = tissue_windows(t, tissue, o.min_tissue_fraction);

  prepare_folder(folder);
  const SlideOutputs out = SlideOutputs::in(folder);
  const int classes = model.num_classes();
  if (classes > 255) throw SegmentationError("model " + card.name + ": more than 255 classes do not fit an 8-bit mask");
  const fs::path mask_tmp = temp_beside(out.mask);
  auto writer = std::make_unique<PyramidTiffWriter>(mask_tmp, t.width, t.height, mask_options(card, classes, t, o, slide_path));

  // Reader: window k -> normalised planar 3 x py x px floats.
  std::vector<Normalization> norms;
  for (const auto& ch : card.channels) norms.push_back(ch.normalization);
  auto make = [&](std::size_t k) {
    const auto [i, j] = windows[k];
    const std::vector<float> rgb = detail::resample_region(slide, t.level, t.r, j * t.sx - t.mx, i * t.sy - t.my, t.px, t.py);
    std::vector<float> tile(rgb.size());
    const std::size_t plane = std::size_t(t.py) * t.px;
    for (std::size_t p = 0; p < plane; ++p)
      for (std::size_t c = 0; c < 3; ++c) tile[c * plane + p] = normalise(rgb[p * 3 + c], norms[c]);
    return tile;
  };
  // The volume sliding window's Gaussian (sigma = P/8) over a one-slice patch.
  const torch::Tensor gauss_map = engine::importance_map({1, t.py, t.px}, 1.0 / 8);
  const std::vector<float> gauss(gauss_map.data_ptr<float>(), gauss_map.data_ptr<float>() + gauss_map.numel());
  Stitcher stitcher(t, classes, gauss, *writer);

  const auto t_infer = Clock::now();
  {
    const int batch = std::max(1, o.batch_size);
    Pipeline pipeline(std::max(1, o.reader_threads), std::size_t(batch) * 2 + std::size_t(o.reader_threads), windows.size(), make);
    timings.forward = run_windows(model, t, windows, pipeline, stitcher, o);
  }
  timings.inference = since(t_infer);
  const auto level_sizes = writer->finish();
  writer.reset();
  fs::rename(mask_tmp, out.mask);
  write_tissue_picture(tissue, out.tissue_picture);
  const int annotation_mask_level = annotation_level(level_sizes);
  write_json_atomically(out.annotations,
                        qupath_annotations(tissue, read_label_mask(out.mask, annotation_mask_level),
                                           t.d * std::pow(2.0, annotation_mask_level), card));
  timings.total = since(t_start);
  const json summary = summary_json(card, slide_path, slide.info(), t, tissue, (long long)windows.size(),
                                    stitcher.class_pixels(), level_sizes, out, o, timings);
  write_json_atomically(out.summary, summary);
  return summary;
}

}  // namespace sagitta::segmentation::wsi

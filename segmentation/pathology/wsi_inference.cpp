// Tiled whole-slide inference: windows at the model's resolution, decoded by reader threads while
// the network runs, Gaussian-blended and stitched band by band into a pyramidal TIFF label mask.
//
// Windows sit on a fixed grid aligned with output "cells" of stride S: window (i, j) covers its
// cell plus a margin m on every side (patch P = S + 2m). Unlike the volume sliding window (evenly
// spaced starts), the fixed grid lets rows of the mask be finished in order: once window row i
// is done, everything above row i's bottom margin is final. The blending is the volume sliding
// window's: logits weighted by the same Gaussian importance map (sigma = P/8, peak 1, floor 1e-6)
// and summed; the label is the argmax of the weighted sums (dividing by the summed weights does not
// change it). Memory: the windows in flight, a band of cells for the row being run (allocated only
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

#include "model_impl.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/wsi.h"
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

// The volume sliding window's importance map in 2D: product of Gaussians, sigma = P/8, peak 1,
// floored at 1e-6.
std::vector<float> importance_map(int px, int py) {
  auto axis = [](int p) {
    std::vector<double> g(static_cast<std::size_t>(p));
    const double c = (double(p) - 1) / 2, sigma = std::max(1e-6, double(p) / 8);
    for (int i = 0; i < p; ++i) g[std::size_t(i)] = std::exp(-(i - c) * (i - c) / (2 * sigma * sigma));
    return g;
  };
  const auto gx = axis(px), gy = axis(py);
  double peak = 0;
  for (double a : gy)
    for (double b : gx) peak = std::max(peak, a * b);
  std::vector<float> m(std::size_t(px) * std::size_t(py));
  for (int y = 0; y < py; ++y)
    for (int x = 0; x < px; ++x)
      m[std::size_t(y) * px + x] = float(std::max(1e-6, gy[std::size_t(y)] * gx[std::size_t(x)] / peak));
  return m;
}

}  // namespace

SlideOutputs SlideOutputs::in(const fs::path& folder) {
  return {folder / "mask.tiff", folder / "tissue.png", folder / "summary.json"};
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
  if (card.dimensions != 2 || card.channels.size() != 3)
    throw SegmentationError(fmt::format("model {}: whole-slide segmentation needs a 2D model with 3 (RGB) input "
                                        "channels; this one is {}D with {} channel(s)",
                                        card.name, card.dimensions, card.channels.size()));
  const double target_mpp = o.target_mpp ? *o.target_mpp : card.microns_per_pixel.value_or(0);
  if (!(target_mpp > 0))
    throw SegmentationError("model " + card.name +
                            ": its card has no 'microns_per_pixel' (the resolution it was trained at); add it or give "
                            "--mpp");
  if (!(o.overlap >= 0 && o.overlap <= 0.5)) throw SegmentationError(fmt::format("overlap {} is outside [0, 0.5]", o.overlap));
  const int px = card.patch_size[0], py = card.patch_size[1];
  if (px % 16 || py % 16)
    throw SegmentationError(fmt::format("model {}: whole-slide tiling needs a patch size that is a multiple of 16 ({}x{})",
                                        card.name, px, py));
  // Margins are multiples of 8 so that the stride P - 2m stays a multiple of 16.
  auto margin = [&](int p) { return std::min(p / 4, int(std::lround(double(p) * o.overlap / 2 / 8)) * 8); };
  const int mx = margin(px), my = margin(py), sx = px - 2 * mx, sy = py - 2 * my;

  const Slide slide = Slide::open(slide_path);
  const SlideInfo& info = slide.info();
  std::string mpp_source = "file";
  double slide_mpp = 0;
  if (info.mpp_x && info.mpp_y) {
    slide_mpp = std::sqrt(*info.mpp_x * *info.mpp_y);
  } else if (o.assume_mpp) {
    slide_mpp = *o.assume_mpp;
    mpp_source = "assumed (--assume-mpp)";
  } else {
    throw SegmentationError("slide " + slide_path.string() +
                            ": the file gives no resolution (microns per pixel); give --assume-mpp if you know it");
  }

  // Output grid: one pixel per target_mpp; read from the best level and resample by r.
  const double d = target_mpp / slide_mpp;
  const int level = slide.best_level(d);
  const Level& lv = info.levels[std::size_t(level)];
  const double r = d / lv.downsample;
  const int width = int(std::ceil(double(info.levels[0].width) / d));
  const int height = int(std::ceil(double(info.levels[0].height) / d));
  const int cols = (width + sx - 1) / sx, rows = (height + sy - 1) / sy;

  const auto t_tissue = Clock::now();
  const TissueMask tissue = detect_tissue(slide, o.tissue);
  const double tissue_seconds = since(t_tissue);

  // Windows to run: those whose centre cell holds enough tissue.
  std::vector<std::pair<int, int>> windows;
  for (int i = 0; i < rows; ++i)
    for (int j = 0; j < cols; ++j) {
      const double f = tissue.fraction(double(j) * sx * d, double(i) * sy * d, double(j + 1) * sx * d, double(i + 1) * sy * d);
      if (f >= o.min_tissue_fraction && f > 0) windows.emplace_back(i, j);
    }
  const long long total_windows = (long long)rows * cols;

  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw SegmentationError("cannot create " + folder.string() + ": " + ec.message());
  const SlideOutputs out = SlideOutputs::in(folder);
  // Leftovers of a run that was killed (temporary names carry the dead process's id).
  for (const auto& e : fs::directory_iterator(folder, ec))
    if (e.path().filename().string().rfind(".", 0) == 0 && e.path().filename().string().find(".partial-") != std::string::npos)
      fs::remove(e.path(), ec);

  const int classes = model.num_classes();
  if (classes > 255) throw SegmentationError("model " + card.name + ": more than 255 classes do not fit an 8-bit mask");
  PyramidTiffOptions tiff_options;
  tiff_options.tile = o.tiff_tile;
  tiff_options.mpp = target_mpp;
  tiff_options.palette.assign(std::size_t(classes), {160, 160, 160});
  for (const auto& l : card.labels)
    if (l.value < classes) tiff_options.palette[std::size_t(l.value)] = l.color;
  {
    std::string names;
    for (const auto& l : card.labels) names += fmt::format("{}{}={}", names.empty() ? "" : ",", l.value, l.name);
    tiff_options.description = fmt::format("Sagitta label mask of {}; model {} {} (sha256 {}); {} um/px; labels {}",
                                           slide_path.filename().string(), card.name, card.version, card.sha256,
                                           target_mpp, names);
  }
  const fs::path mask_tmp = temp_beside(out.mask);
  auto writer = std::make_unique<PyramidTiffWriter>(mask_tmp, width, height, tiff_options);

  // Reader: window k -> normalised planar 3 x py x px floats.
  std::vector<Normalization> norms;
  for (const auto& ch : card.channels) norms.push_back(ch.normalization);
  auto make = [&](std::size_t k) {
    const auto [i, j] = windows[k];
    const std::vector<float> rgb = detail::resample_region(slide, level, r, j * sx - mx, i * sy - my, px, py);
    std::vector<float> tile(rgb.size());
    const std::size_t plane = std::size_t(py) * px;
    for (std::size_t p = 0; p < plane; ++p)
      for (std::size_t c = 0; c < 3; ++c) tile[c * plane + p] = normalise(rgb[p * 3 + c], norms[c]);
    return tile;
  };

  const std::vector<float> gauss = importance_map(px, py);
  const std::size_t planes = std::size_t(classes) + 1;  // class sums + weight
  const std::size_t band_plane = std::size_t(py) * sx, carry_plane = std::size_t(2 * my) * sx;
  std::vector<std::vector<float>> band(static_cast<std::size_t>(cols)), carry(static_cast<std::size_t>(cols)),
      next_carry(static_cast<std::size_t>(cols));
  const std::size_t row_stride = std::size_t(cols) * sx;
  std::vector<std::uint8_t> row_labels(std::size_t(sy) * row_stride);
  std::vector<long long> class_pixels(std::size_t(classes), 0);
  std::vector<char> finalized(static_cast<std::size_t>(cols), 0);

  // Cell column c of window row i: labels of its top sy rows, its bottom 2m rows carried on.
  auto finalize = [&](int c) {
    auto& b = band[std::size_t(c)];
    auto& cp = carry[std::size_t(c)];
    for (int y = 0; y < sy; ++y) {
      std::uint8_t* dst = &row_labels[std::size_t(y) * row_stride + std::size_t(c) * sx];
      if (b.empty() && (cp.empty() || y >= 2 * my)) {
        std::fill_n(dst, sx, std::uint8_t(0));
        continue;
      }
      for (int x = 0; x < sx; ++x) {
        auto value = [&](std::size_t k) {
          float v = b.empty() ? 0.0f : b[k * band_plane + std::size_t(y) * sx + x];
          if (!cp.empty() && y < 2 * my) v += cp[k * carry_plane + std::size_t(y) * sx + x];
          return v;
        };
        if (!(value(std::size_t(classes)) > 0)) {  // no window covered this pixel: background
          dst[x] = 0;
          continue;
        }
        int best = 0;
        float best_v = value(0);
        for (int k = 1; k < classes; ++k) {
          const float v = value(std::size_t(k));
          if (v > best_v) best_v = v, best = k;
        }
        dst[x] = std::uint8_t(best);
      }
    }
    auto& nc = next_carry[std::size_t(c)];
    nc.clear();
    if (!b.empty() && my > 0) {
      nc.resize(planes * carry_plane);
      for (std::size_t k = 0; k < planes; ++k)
        std::copy_n(&b[k * band_plane + std::size_t(sy) * sx], carry_plane, &nc[k * carry_plane]);
    }
    std::vector<float>().swap(b);
    std::vector<float>().swap(cp);
    finalized[std::size_t(c)] = 1;
  };
  // Window row i finished: its label rows go to the writer, its carry becomes the next row's.
  auto finish_row = [&](int i) {
    for (int c = 0; c < cols; ++c)
      if (!finalized[std::size_t(c)]) finalize(c);
    const int first = i * sy - my;  // output row of row_labels' first row
    const int y0 = std::max(0, -first), y1 = std::min(sy, height - first);
    if (y1 > y0) {
      writer->push_rows(&row_labels[std::size_t(y0) * row_stride], y1 - y0, row_stride);
      for (int y = y0; y < y1; ++y)
        for (int x = 0; x < width; ++x) ++class_pixels[row_labels[std::size_t(y) * row_stride + std::size_t(x)]];
    }
    carry.swap(next_carry);
    for (auto& v : next_carry) std::vector<float>().swap(v);
    std::fill(finalized.begin(), finalized.end(), 0);
  };
  auto accumulate = [&](int j, const float* logits) {
    const int ox = j * sx - mx;
    for (int c = std::max(0, j - 1); c <= std::min(cols - 1, j + 1); ++c) {
      const int x0 = std::max(ox, c * sx), x1 = std::min(ox + px, (c + 1) * sx);
      if (x1 <= x0) continue;
      auto& b = band[std::size_t(c)];
      if (b.empty()) b.assign(planes * band_plane, 0.0f);
      for (int y = 0; y < py; ++y)
        for (int x = x0; x < x1; ++x) {
          const std::size_t src = std::size_t(y) * px + std::size_t(x - ox);
          const std::size_t dst = std::size_t(y) * sx + std::size_t(x - c * sx);
          const float g = gauss[src];
          for (int k = 0; k < classes; ++k)
            b[std::size_t(k) * band_plane + dst] += g * logits[std::size_t(k) * py * px + src];
          b[std::size_t(classes) * band_plane + dst] += g;
        }
    }
  };

  const auto t_infer = Clock::now();
  double forward_seconds = 0;
  long long done = 0;
  {
    const int batch = std::max(1, o.batch_size);
    Pipeline pipeline(std::max(1, o.reader_threads), std::size_t(batch) * 2 + std::size_t(o.reader_threads), windows.size(), make);
    c10::InferenceMode inference;
    std::size_t k = 0;
    for (int i = 0; i <= rows; ++i) {
      while (k < windows.size() && windows[k].first == i) {
        // A batch of windows of this row.
        std::vector<std::size_t> ids;
        while (k < windows.size() && windows[k].first == i && int(ids.size()) < batch) ids.push_back(k++);
        torch::Tensor x = torch::empty({int64_t(ids.size()), 3, py, px}, torch::kFloat32);
        for (std::size_t b = 0; b < ids.size(); ++b) {
          const std::vector<float> tile = pipeline.take(ids[b]);
          std::copy(tile.begin(), tile.end(), x.data_ptr<float>() + b * tile.size());
        }
        const auto t_forward = Clock::now();
        torch::Tensor y;
        try {
          y = model.impl().logits(x).to(torch::kCPU).to(torch::kFloat32).contiguous();
        } catch (const c10::Error& e) {
          throw SegmentationError("model " + card.name + ": forward failed: " + e.what_without_backtrace());
        }
        forward_seconds += since(t_forward);
        if (y.dim() != 4 || y.size(1) != classes || y.size(2) != py || y.size(3) != px)
          throw SegmentationError("model " + card.name + ": unexpected logits shape for a " + std::to_string(px) + "x" +
                                  std::to_string(py) + " window");
        const float* yp = y.data_ptr<float>();
        for (std::size_t b = 0; b < ids.size(); ++b)
          accumulate(windows[ids[b]].second, yp + b * std::size_t(classes) * py * px);
        // Cells left of the last window's left neighbour have all their windows.
        const int last_j = windows[ids.back()].second;
        for (int c = 0; c < last_j; ++c)
          if (!finalized[std::size_t(c)]) finalize(c);
        done += (long long)ids.size();
        if (o.progress && !o.progress(done, (long long)windows.size())) throw Stopped();
      }
      finish_row(i);
    }
  }
  const double infer_seconds = since(t_infer);
  const auto level_sizes = writer->finish();
  writer.reset();
  fs::rename(mask_tmp, out.mask);
  write_tissue_picture(tissue, out.tissue_picture);

  const double px_area_mm2 = (target_mpp / 1000) * (target_mpp / 1000);
  const double tissue_px_mm = tissue.downsample * slide_mpp / 1000;
  const long long tissue_pixels = std::count(tissue.mask.begin(), tissue.mask.end(), std::uint8_t(1));
  json class_json = json::array();
  for (int k = 0; k < classes; ++k) {
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
  const double total_seconds = since(t_start);
  json summary = {
      {"slide", fs::absolute(slide_path).string()},
      {"name", slide_name(slide_path)},
      {"vendor", info.vendor},
      {"levels", slide_levels},
      {"mpp", slide_mpp},
      {"mpp_source", mpp_source},
      {"objective_power", info.objective_power ? json(*info.objective_power) : json(nullptr)},
      {"model", {{"name", card.name}, {"version", card.version}, {"sha256", card.sha256}, {"card", card.path.string()}}},
      {"inference",
       {{"mpp", target_mpp}, {"level", level}, {"level_downsample", lv.downsample}, {"resample", r},
        {"size", {width, height}}, {"window", {px, py}}, {"stride", {sx, sy}}, {"margin", {mx, my}},
        {"blending", "gaussian importance map (sigma = patch/8), as the volume sliding window"},
        {"batch_size", o.batch_size}, {"reader_threads", o.reader_threads}}},
      {"tiles", {{"total", total_windows}, {"segmented", (long long)windows.size()},
                 {"background_skipped", total_windows - (long long)windows.size()}}},
      {"tissue", {{"threshold", tissue.threshold}, {"fraction", tissue.tissue_fraction()},
                  {"area_mm2", double(tissue_pixels) * tissue_px_mm * tissue_px_mm},
                  {"mask_size", {tissue.width, tissue.height}}, {"mask_downsample", tissue.downsample},
                  {"picture", out.tissue_picture.filename().string()}}},
      {"classes", class_json},
      {"mask", {{"file", out.mask.filename().string()}, {"levels", levels_json}, {"mpp", target_mpp}, {"tile", o.tiff_tile}}},
      {"settings", output_settings(card, o)},
      // Timings differ between runs; everything else in the summary is a function of the inputs.
      {"timing", {{"seconds", total_seconds}, {"tissue_seconds", tissue_seconds}, {"inference_seconds", infer_seconds},
                  {"forward_seconds", forward_seconds},
                  {"tiles_per_second", infer_seconds > 0 ? double(windows.size()) / infer_seconds : 0.0}}},
  };
  write_json_atomically(out.summary, summary);
  return summary;
}

}  // namespace sagitta::segmentation::wsi

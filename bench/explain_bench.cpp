// Grad-CAM cost against the segmentation itself, over the same windows: `segment` (preprocess,
// sliding windows, back to the source grid) versus `explain` with the same options (the same
// windows, their Grad-CAM maps and the segmentation from the same pass; no sanity check, no
// deletion curve). Runs alternate and the median of each is kept. Prints one JSON object.
//   explain_bench CARD VOLUME LABEL THREADS [REPEATS] [METHOD] [BATCH]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>

#include <nlohmann/json.hpp>

#include "sagitta/core/volume_io.h"
#include "sagitta/explain/explain.h"
#include "sagitta/segmentation/segment.h"

namespace seg = sagitta::segmentation;
namespace xp = sagitta::explain;
using Clock = std::chrono::steady_clock;

static double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
static double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: explain_bench CARD VOLUME LABEL THREADS [REPEATS] [METHOD] [BATCH]\n";
    return 2;
  }
  const auto card = sagitta::load_card(argv[1]);
  seg::ModelOptions mo;
  mo.threads = std::atoi(argv[4]);
  const int repeats = argc > 5 ? std::max(1, std::atoi(argv[5])) : 3;
  const auto method = xp::parse_method(argc > 6 ? argv[6] : "gradcam");
  if (!method) {
    std::cerr << "unknown method\n";
    return 2;
  }
  const int batch = argc > 7 ? std::max(1, std::atoi(argv[7])) : 1;
  const auto model = seg::Model::load(card, mo);
  const auto volume = sagitta::read_volume(argv[2]);

  seg::SegmentOptions so;
  so.window.batch_size = batch;
  xp::ExplainOptions eo;
  eo.method = *method;
  eo.segment = so;
  eo.sanity = false;
  eo.deletion = false;

  // One untimed run of each: oneDNN builds its kernels for a shape on first use (and the
  // gradient-recording forward uses other kernels than the inference-mode one).
  seg::segment(model, {volume}, so);
  xp::explain(model, {volume}, {argv[3]}, eo);

  std::vector<double> seg_total, seg_windows, exp_total, exp_windows;
  nlohmann::json windows, decisions;
  for (int r = 0; r < repeats; ++r) {
    auto t = Clock::now();
    const auto s = seg::segment(model, {volume}, so);
    seg_total.push_back(since(t));
    seg_windows.push_back(s.report["timings_s"]["inference"].get<double>());
    t = Clock::now();
    const auto e = xp::explain(model, {volume}, {argv[3]}, eo);
    exp_total.push_back(since(t));
    exp_windows.push_back(e.report["timings_s"]["inference"].get<double>());
    windows = e.report["windows"];
    decisions = e.report["decisions"];
    if (s.report["windows"]["count"] != e.report["windows"]["count"]) {
      std::cerr << "segmentation and explanation ran different windows\n";
      return 1;
    }
  }
  const auto size = volume->GetLargestPossibleRegion().GetSize();
  const nlohmann::json out = {
      {"model", card.name},
      {"dimensions", card.dimensions},
      {"patch", card.patch_size},
      {"volume", {size[0], size[1], size[2]}},
      {"label", argv[3]},
      {"method", xp::method_name(*method)},
      {"threads", mo.threads},
      {"repeats", repeats},
      {"windows", windows},
      {"segment_s", median(seg_total)},
      {"explain_s", median(exp_total)},
      {"segment_windows_s", median(seg_windows)},
      {"explain_windows_s", median(exp_windows)},
      {"ratio_total", median(exp_total) / median(seg_total)},
      {"ratio_windows", median(exp_windows) / median(seg_windows)},
      {"goal_ratio", 2.5}};
  std::cout << out.dump(2) << std::endl;
  return 0;
}

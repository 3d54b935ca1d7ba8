// Explanations of one volume: preprocessing, the engine's pass over the windows, the segmentation
// from the same pass, targets, normalisation, mapping to the source geometry, faithfulness and
// sanity numbers, the report. No LibTorch here (the engine is engine.cpp).
#include "sagitta/explain/explain.h"

#include <fmt/format.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

#include "confidence.h"
#include "engine.h"
#include "scores.h"
#include "sagitta/core/image.h"
#include "sagitta/explain/error.h"
#include "sagitta/segmentation/postprocess.h"

namespace sagitta::explain {
namespace seg = sagitta::segmentation;
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::size_t count_nonzero(const LabelImage& image) {
  const auto* p = image.GetBufferPointer();
  return std::size_t(std::count_if(p, p + image.GetBufferedRegion().GetNumberOfPixels(), [](auto v) { return v != 0; }));
}

LabelImage::Pointer binary(const LabelImage& labels, int value) {
  auto out = sagitta::new_like<LabelImage>(labels, 0);
  const auto* p = labels.GetBufferPointer();
  auto* q = out->GetBufferPointer();
  for (std::size_t i = 0, n = labels.GetBufferedRegion().GetNumberOfPixels(); i < n; ++i) q[i] = p[i] == value ? 1 : 0;
  return out;
}

std::string label_list(const sagitta::ModelCard& card) {
  std::string s;
  for (const auto& l : card.labels)
    if (l.value != 0) s += (s.empty() ? "" : ", ") + l.name;
  return s;
}

// The source-grid mask of the requested region (box or mask file), 1 inside.
LabelImage::Pointer source_region(const Region& region, const Image& source) {
  const auto size = source.GetLargestPossibleRegion().GetSize();
  auto out = sagitta::new_like<LabelImage>(source, 0);
  if (region.kind == Region::Kind::Box) {
    const auto& b = region.box;
    for (int a = 0; a < 3; ++a)
      if (b[a] > b[a + 3] || b[a + 3] < 0 || b[a] >= long(size[a]))
        throw ExplainError(fmt::format("the box {},{},{} - {},{},{} is empty or outside the volume ({}x{}x{} voxels)", b[0],
                                       b[1], b[2], b[3], b[4], b[5], size[0], size[1], size[2]));
    LabelImage::RegionType r;
    for (int a = 0; a < 3; ++a) {
      const long lo = std::max(0L, b[a]), hi = std::min(long(size[a]) - 1, b[a + 3]);
      r.SetIndex(a, lo);
      r.SetSize(a, itk::SizeValueType(hi - lo + 1));
    }
    for (itk::ImageRegionIteratorWithIndex<LabelImage> it(out, r); !it.IsAtEnd(); ++it) it.Set(1);
    return out;
  }
  if (!region.mask) throw ExplainError("no mask given for the mask region");
  auto mask = sagitta::new_like<LabelImage>(*region.mask, 0);
  const float* p = region.mask->GetBufferPointer();
  auto* q = mask->GetBufferPointer();
  for (std::size_t i = 0, n = mask->GetBufferedRegion().GetNumberOfPixels(); i < n; ++i) q[i] = p[i] != 0 ? 1 : 0;
  // Nearest neighbour onto the source grid (identity copy when the grids agree).
  return seg::labels_to_source(*mask, source);
}

// Peak position (LPS mm) and the axial slice indices of the source with the most heatmap mass.
nlohmann::json peak_json(const Image& heatmap) {
  const float* p = heatmap.GetBufferPointer();
  const std::size_t n = heatmap.GetBufferedRegion().GetNumberOfPixels();
  const std::size_t at = std::size_t(std::max_element(p, p + n) - p);
  const auto size = heatmap.GetLargestPossibleRegion().GetSize();
  Image::IndexType index;
  index[0] = long(at % size[0]), index[1] = long(at / size[0] % size[1]), index[2] = long(at / (size[0] * size[1]));
  Image::PointType point;
  heatmap.TransformIndexToPhysicalPoint(index, point);
  return {{"index", {index[0], index[1], index[2]}}, {"lps_mm", {point[0], point[1], point[2]}}, {"value", p[at]}};
}

nlohmann::json curve_json(const DeletionCurve& c) {
  return {{"fractions_removed", c.fractions}, {"relative_score", c.scores}, {"random_order_relative_score", c.random_scores},
          {"area", c.area},  {"random_order_area", c.random_area}, {"windows", c.windows},
          {"score", "mean probability of the label over the target, relative to the unmodified window"},
          {"removed_value", "each channel's minimum (background, as windows are padded)"}};
}

}  // namespace

std::string method_name(Method method) {
  switch (method) {
    case Method::GradCam: return "gradcam";
    case Method::GradCamPlusPlus: return "gradcam++";
    case Method::HiResCam: return "hirescam";
    case Method::Occlusion: return "occlusion";
  }
  return "?";
}

std::optional<Method> parse_method(const std::string& name) {
  for (Method m : {Method::GradCam, Method::GradCamPlusPlus, Method::HiResCam, Method::Occlusion})
    if (method_name(m) == name) return m;
  return std::nullopt;
}

std::vector<Method> available_methods(const sagitta::ModelCard& card) {
  const bool activation = card.format == "native-unet" || card.format == "nnunet" ? !card.gradcam_layer.empty() : card.returns_activation;
  if (activation) return {Method::GradCam, Method::GradCamPlusPlus, Method::HiResCam, Method::Occlusion};
  return {Method::Occlusion};
}

void check_method(const sagitta::ModelCard& card, Method method) {
  const auto ok = available_methods(card);
  if (std::find(ok.begin(), ok.end(), method) != ok.end()) return;
  std::string names;
  for (Method m : ok) names += (names.empty() ? "" : ", ") + method_name(m);
  throw ExplainError(fmt::format("model '{}' has no activation output, so {} cannot run (methods that work with it: {}); "
                                 "re-export it with scripts/export_torchscript.py --layer NAME for the Grad-CAM family",
                                 card.name, method_name(method), names));
}

double correlation(const Image& a, const Image& b) {
  const std::size_t n = a.GetBufferedRegion().GetNumberOfPixels();
  if (n != b.GetBufferedRegion().GetNumberOfPixels() || n == 0) throw ExplainError("correlation: the maps differ in size");
  const float *p = a.GetBufferPointer(), *q = b.GetBufferPointer();
  double ma = 0, mb = 0;
  for (std::size_t i = 0; i < n; ++i) ma += p[i], mb += q[i];
  ma /= double(n), mb /= double(n);
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double da = p[i] - ma, db = q[i] - mb;
    sab += da * db, saa += da * da, sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0.0;
}

std::vector<float> explain_patch(const seg::Model& model, const std::vector<float>& input, const std::vector<std::int64_t>& shape,
                                 int label, Method method, ScoreReduction score, const std::vector<std::uint8_t>& region) {
  check_method(model.card(), method);
  if (label < 0 || label >= model.num_classes()) throw ExplainError(fmt::format("label value {} is not a class of the model", label));
  return detail::explain_patch_raw(model, input, shape, label, method, score, region);
}

namespace {

// The state of one explain() call between its stages.
struct Run {
  const seg::Model& model;
  const sagitta::ModelCard& card;
  const ExplainOptions& options;
  const std::vector<Image::Pointer>& inputs;
  const Image& source;
  std::vector<const sagitta::Label*> labels;
  nlohmann::json decisions = nlohmann::json::array();
  seg::Preprocessed pre;
  // Region of a box or mask: on the source grid (for the report) and the model grid (for the score).
  LabelImage::Pointer region_source, region_model;
  detail::EngineRequest request;
  detail::EngineResult pass;
  LabelImage::Pointer model_labels;
  std::vector<LabelImage::Pointer> targets_model;  // per kept label
  std::vector<std::size_t> keep;                   // labels with a target
  std::vector<Image::Pointer> random_maps;         // per kept label (sanity check)
  double t_pre = 0, t_back = 0, t_sanity = 0, t_deletion = 0;

  Run(const seg::Model& m, const ExplainOptions& o, const std::vector<Image::Pointer>& in,
      std::vector<const sagitta::Label*> l)
      : model(m), card(m.card()), options(o), inputs(in), source(*in[0]), labels(std::move(l)) {}

  void note(const std::vector<std::string>& list) {
    for (const auto& d : list) decisions.push_back(d);
  }
  std::function<bool(int, int)> progress(const std::string& stage) const {
    const ExplainOptions& o = options;
    return [&o, stage](int done, int total) { return !o.progress || o.progress(stage, done, total); };
  }
};

std::vector<const sagitta::Label*> resolve_labels(const sagitta::ModelCard& card, const std::vector<std::string>& names) {
  std::vector<const sagitta::Label*> labels;
  if (names.empty()) {
    for (const auto& l : card.labels)
      if (l.value != 0) labels.push_back(&l);
    return labels;
  }
  for (const auto& n : names) {
    const sagitta::Label* l = card.find_label(n);
    if (!l) throw ExplainError(fmt::format("unknown label '{}'; the model's labels: {}", n, label_list(card)));
    labels.push_back(l);
  }
  return labels;
}

void preprocess_and_region(Run& run) {
  const auto t = Clock::now();
  run.pre = seg::preprocess(run.inputs, run.card, run.options.segment.preprocess);
  // nnU-Net's own data path gives arrays without patient geometry, which the heatmaps' way back
  // to the source grid needs: refused rather than mapped wrongly.
  if (run.pre.nnunet_plan)
    throw ExplainError("explanations of nnU-Net results folders are not supported yet (segment runs them)");
  run.t_pre = since(t);
  run.note(run.pre.decisions);
  const Region& region = run.options.region;
  if (region.kind == Region::Kind::Prediction) return;
  run.region_source = source_region(region, run.source);
  run.region_model = seg::labels_to_source(*run.region_source, *run.pre.channels[0]);
  const std::string what = region.kind == Region::Kind::Box ? "box" : "mask";
  if (count_nonzero(*run.region_source) == 0) throw ExplainError("the " + what + " region is empty: nothing to explain");
  if (count_nonzero(*run.region_model) == 0)
    throw ExplainError("the " + what + " region covers no voxel of the model's grid (too thin for its spacing)");
}

void run_pass(Run& run) {
  const ExplainOptions& o = run.options;
  detail::EngineRequest& request = run.request;
  for (const auto* l : run.labels) request.labels.push_back(l->value);
  request.method = o.method;
  request.score = o.score;
  request.region = run.region_model.GetPointer();
  request.overlap = o.segment.window.overlap;
  request.batch_size = o.segment.window.batch_size;
  request.mirror = o.segment.window.mirror;
  request.sigma_scale = o.segment.window.sigma_scale;
  request.uncertainty = o.uncertainty;
  request.mc_samples = o.mc_samples;
  request.seed = o.seed;
  request.occlusion_size = o.occlusion_size;
  request.progress = run.progress("explaining");
  run.pass = detail::run_windows(run.model, run.pre.channels, request);
  run.note(run.pass.decisions);
}

// The segmentation from the same pass, as segment() makes it.
void segmentation_from_pass(Run& run, seg::Segmentation& s) {
  const auto t = Clock::now();
  const ExplainOptions& o = run.options;
  auto& logits = run.pass.logits;
  // The review's per-structure confidence, from the logits as segment() measures it.
  const std::size_t n = logits.empty() ? 0 : logits[0]->GetBufferedRegion().GetNumberOfPixels();
  std::vector<const float*> planes;
  for (const auto& l : logits) planes.push_back(l->GetBufferPointer());
  std::vector<float> top(n), entropy(n);
  seg::detail::confidence_from_scores(planes, n, !run.card.regions.empty(), top.data(), entropy.data());
  seg::softmax(logits);
  run.model_labels = seg::argmax(logits);
  if (n) {
    const auto size = run.model_labels->GetLargestPossibleRegion().GetSize();
    s.confidence = seg::detail::structure_confidence(run.model_labels->GetBufferPointer(), top.data(), entropy.data(),
                                                     {size[0], size[1], size[2]}, run.card);
  }
  s.labels = seg::labels_to_source(*run.model_labels, run.source);
  if (o.segment.probabilities)
    for (std::size_t k = 0; k < logits.size(); ++k)
      s.probabilities.push_back(seg::probability_to_source(*logits[k], run.source, k == 0 ? 1.0f : 0.0f));
  logits.clear();
  if (run.pre.resampled || run.pre.cropped)
    run.decisions.push_back(std::string("labels mapped back to the source grid by nearest neighbour, heatmaps linearly") +
                            (o.segment.probabilities ? ", probabilities linearly" : ""));
  run.note(seg::postprocess(*s.labels, o.segment.postprocess));
  s.statistics = seg::label_statistics(*s.labels, run.inputs[0].GetPointer(), run.card);
  run.t_back = since(t);
}

// Targets on the model grid, emptiness checked before any further work.
void select_targets(Run& run) {
  for (std::size_t i = 0; i < run.labels.size(); ++i) {
    LabelImage::Pointer target = run.region_model ? run.region_model : binary(*run.model_labels, run.labels[i]->value);
    if (count_nonzero(*target) == 0 || run.pass.target_windows[i] == 0) {
      const std::string msg = fmt::format("label '{}' is not predicted anywhere in this volume: nothing to explain "
                                          "(give a box or a mask region to explain its score elsewhere)",
                                          run.labels[i]->name);
      if (!run.options.skip_empty) throw ExplainError(msg);
      run.decisions.push_back(msg);
      continue;
    }
    run.targets_model.push_back(target);
    run.keep.push_back(i);
  }
}

// Sanity: the same maps from a copy of the model with randomised weights, same targets.
void sanity_maps(Run& run) {
  if (!run.options.sanity || run.keep.empty()) return;
  const auto t = Clock::now();
  detail::EngineRequest r = run.request;
  r.labels.clear();
  for (std::size_t i : run.keep) r.labels.push_back(run.labels[i]->value);
  r.mirror = false;
  r.uncertainty = false;
  // The trained model's targets: its predicted labels (or the same box/mask).
  r.region = run.region_model ? run.region_model.GetPointer() : run.model_labels.GetPointer();
  r.region_is_label_map = !run.region_model;
  r.randomised = true;
  r.progress = run.progress("sanity check");
  run.random_maps = detail::run_windows(run.model, run.pre.channels, r).maps;
  run.t_sanity = since(t);
}

// Scales a model-grid map to 0..1 in place; returns its raw maximum.
double normalise_map(Image& map) {
  float* p = map.GetBufferPointer();
  const std::size_t n = map.GetBufferedRegion().GetNumberOfPixels();
  const double raw_max = n ? double(*std::max_element(p, p + n)) : 0.0;
  if (raw_max > 0)
    for (std::size_t v = 0; v < n; ++v) p[v] = float(p[v] / raw_max);
  return raw_max;
}

// Linear resampling lowers a sharp peak: the source-grid map is scaled again to span 0..1.
void rescale_heatmap(Image& heatmap) {
  float* h = heatmap.GetBufferPointer();
  const std::size_t m = heatmap.GetBufferedRegion().GetNumberOfPixels();
  const float peak = m ? *std::max_element(h, h + m) : 0.0f;
  for (std::size_t v = 0; v < m; ++v) h[v] = peak > 0 ? std::clamp(h[v] / peak, 0.0f, 1.0f) : 0.0f;
}

double mass_in(const Image& heatmap, const LabelImage& target) {
  const float* h = heatmap.GetBufferPointer();
  const auto* m = target.GetBufferPointer();
  double inside = 0, total = 0;
  for (std::size_t v = 0, c = heatmap.GetBufferedRegion().GetNumberOfPixels(); v < c; ++v) {
    total += h[v];
    if (m[v]) inside += h[v];
  }
  return total > 0 ? inside / total : 0.0;
}

nlohmann::json label_report(const LabelExplanation& e, long long windows_with_target) {
  nlohmann::json report = {{"name", e.name},
                           {"value", e.value},
                           {"target_voxels", e.target_voxels},
                           {"windows_with_target", windows_with_target},
                           {"raw_max", e.raw_max},
                           {"mass_in_target", e.mass_in_target},
                           {"peak", peak_json(*e.heatmap)}};
  if (e.randomisation_correlation)
    report["randomisation"] = {{"correlation", *e.randomisation_correlation},
                               {"passed", std::abs(*e.randomisation_correlation) < 0.5},
                               {"how", "Pearson correlation with the map of a copy of the model whose weights are "
                                       "redrawn (normal, each tensor's mean and std), same targets"}};
  if (e.deletion) report["deletion"] = curve_json(*e.deletion);
  return report;
}

// The j-th kept label: normalised map, sanity correlation, deletion curve, source-grid heatmap,
// target and report.
LabelExplanation explain_label(Run& run, std::size_t j, const LabelImage& source_labels) {
  const ExplainOptions& o = run.options;
  const std::size_t i = run.keep[j];
  LabelExplanation e;
  e.value = run.labels[i]->value;
  e.name = run.labels[i]->name;
  Image& map = *run.pass.maps[i];
  e.raw_max = normalise_map(map);
  if (!(e.raw_max > 0))
    run.decisions.push_back(fmt::format("label '{}': the {} map is zero everywhere (no positive evidence at layer '{}')",
                                        e.name, method_name(o.method), run.card.gradcam_layer));
  if (!run.random_maps.empty()) e.randomisation_correlation = correlation(map, *run.random_maps[j]);
  if (o.deletion) {
    const auto t = Clock::now();
    if (o.progress && !o.progress("deletion curve", int(j), int(run.keep.size()))) throw ExplainError("cancelled");
    e.deletion = detail::deletion_curve(run.model, run.pre.channels, map, *run.targets_model[j], e.value, o.deletion_windows,
                                        o.deletion_steps, o.segment.window.overlap, o.seed);
    run.t_deletion += since(t);
  }
  e.heatmap = seg::probability_to_source(map, run.source, 0.0f);
  rescale_heatmap(*e.heatmap);
  e.target = run.region_source ? run.region_source : binary(source_labels, e.value);
  e.target_voxels = count_nonzero(*e.target);
  e.mass_in_target = mass_in(*e.heatmap, *e.target);
  e.report = label_report(e, run.pass.target_windows[i]);
  return e;
}

// The segmentation's report and the explanation's.
void reports(const Run& run, Explanation& out, const nlohmann::json& label_reports, Clock::time_point t_start) {
  const ExplainOptions& o = run.options;
  const sagitta::ModelCard& card = run.card;
  seg::Segmentation& s = out.segmentation;
  nlohmann::json stats = nlohmann::json::array();
  for (const auto& st : s.statistics) stats.push_back(seg::to_json(st));
  const nlohmann::json windows = {{"count", run.pass.windows},
                                  {"patch", card.dimensions == 2 ? std::vector<int>{card.patch_size[0], card.patch_size[1], 1}
                                                                 : card.patch_size},
                                  {"forward_passes", run.pass.forward_passes},
                                  {"backward_passes", run.pass.backward_passes},
                                  {"overlap", run.request.overlap},
                                  {"batch_size", run.request.batch_size},
                                  {"mirror", run.request.mirror}};
  const nlohmann::json timings = {{"preprocess", run.t_pre}, {"inference", run.pass.seconds},  {"to_source_grid", run.t_back},
                                  {"sanity", run.t_sanity},  {"deletion", run.t_deletion},     {"explain_total", since(t_start)}};
  s.report = {{"model_grid", sagitta::geometry_json(*run.pre.channels[0])},
              {"windows", windows},
              {"device", run.model.device()},
              {"decisions", run.decisions},
              {"timings_s", timings},
              {"labels", stats}};
  out.report = {{"method", method_name(o.method)},
                {"layer", o.method == Method::Occlusion ? "" : card.gradcam_layer},
                {"score", o.score == ScoreReduction::Sum ? "sum" : "mean"},
                {"region", o.region.kind == Region::Kind::Prediction ? "predicted mask (each window's own argmax)"
                           : o.region.kind == Region::Kind::Box    ? "box"
                                                                    : "mask"},
                {"upsampling", card.dimensions == 3 ? "trilinear to the patch, linear to the source grid"
                                                    : "bilinear to the patch, linear to the source grid"},
                {"blending", "Gaussian importance weights of the segmentation, over windows whose target is not empty"},
                {"normalisation", "divided by the largest blended value (raw_max) to 0..1, again after resampling to the source grid"},
                {"uncertainty", o.uncertainty},
                {"windows", windows},
                {"labels", label_reports},
                {"decisions", run.decisions},
                {"timings_s", timings}};
  if (o.region.kind == Region::Kind::Box) out.report["box"] = o.region.box;
}

}  // namespace

Explanation explain(const seg::Model& model, const std::vector<Image::Pointer>& inputs, const std::vector<std::string>& names,
                    const ExplainOptions& options) {
  const auto t_start = Clock::now();
  check_method(model.card(), options.method);
  std::vector<const sagitta::Label*> labels = resolve_labels(model.card(), names);
  if (inputs.empty() || !inputs[0]) throw ExplainError("no input volume");
  Run run(model, options, inputs, std::move(labels));
  run.note(model.notes());
  preprocess_and_region(run);
  run_pass(run);
  Explanation out;
  segmentation_from_pass(run, out.segmentation);
  select_targets(run);
  sanity_maps(run);
  nlohmann::json label_reports = nlohmann::json::array();
  for (std::size_t j = 0; j < run.keep.size(); ++j) {
    out.labels.push_back(explain_label(run, j, *out.segmentation.labels));
    label_reports.push_back(out.labels.back().report);
  }
  if (run.pass.entropy) out.uncertainty = seg::probability_to_source(*run.pass.entropy, run.source, 0.0f);
  reports(run, out, label_reports, t_start);
  return out;
}

}  // namespace sagitta::explain

// Explanations of one volume: preprocessing, the engine's pass over the windows, the segmentation
// from the same pass, targets, normalisation, mapping to the source geometry, faithfulness and
// sanity numbers, the report. No LibTorch here (the engine is engine.cpp).
#include "sagitta/explain/explain.h"

#include <fmt/format.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "engine.h"
#include "sagitta/core/image.h"
#include "sagitta/explain/error.h"
#include "sagitta/segmentation/postprocess.h"

namespace sagitta::explain {
namespace seg = sagitta::segmentation;
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

template <typename TImage>
typename TImage::Pointer new_like(const itk::ImageBase<3>& grid, typename TImage::PixelType value) {
  auto image = TImage::New();
  image->SetRegions(grid.GetLargestPossibleRegion());
  image->CopyInformation(&grid);
  sagitta::allocate_huge(image.GetPointer());
  std::fill_n(image->GetBufferPointer(), image->GetBufferedRegion().GetNumberOfPixels(), value);
  return image;
}

std::size_t count_nonzero(const LabelImage& image) {
  const auto* p = image.GetBufferPointer();
  return std::size_t(std::count_if(p, p + image.GetBufferedRegion().GetNumberOfPixels(), [](auto v) { return v != 0; }));
}

LabelImage::Pointer binary(const LabelImage& labels, int value) {
  auto out = new_like<LabelImage>(labels, 0);
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
  auto out = new_like<LabelImage>(source, 0);
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
  auto mask = new_like<LabelImage>(*region.mask, 0);
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
  const bool activation = card.format == "native-unet" ? !card.gradcam_layer.empty() : card.returns_activation;
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

Explanation explain(const seg::Model& model, const std::vector<Image::Pointer>& inputs, const std::vector<std::string>& names,
                    const ExplainOptions& options) {
  const auto t_start = Clock::now();
  const sagitta::ModelCard& card = model.card();
  check_method(card, options.method);
  std::vector<const sagitta::Label*> labels;
  if (names.empty()) {
    for (const auto& l : card.labels)
      if (l.value != 0) labels.push_back(&l);
  } else {
    for (const auto& n : names) {
      const sagitta::Label* l = card.find_label(n);
      if (!l) throw ExplainError(fmt::format("unknown label '{}'; the model's labels: {}", n, label_list(card)));
      labels.push_back(l);
    }
  }
  if (inputs.empty() || !inputs[0]) throw ExplainError("no input volume");
  const Image& source = *inputs[0];
  auto progress = [&](const std::string& stage) {
    return [&options, stage](int done, int total) { return !options.progress || options.progress(stage, done, total); };
  };

  nlohmann::json decisions = nlohmann::json::array();
  auto note = [&](const std::vector<std::string>& list) {
    for (const auto& d : list) decisions.push_back(d);
  };
  note(model.notes());

  // Region of a box or mask: on the source grid (for the report) and the model grid (for the score).
  LabelImage::Pointer region_source, region_model;
  auto t = Clock::now();
  seg::Preprocessed pre = seg::preprocess(inputs, card, options.segment.preprocess);
  const double t_pre = since(t);
  note(pre.decisions);
  const Image& grid = *pre.channels[0];
  if (options.region.kind != Region::Kind::Prediction) {
    region_source = source_region(options.region, source);
    region_model = seg::labels_to_source(*region_source, grid);
    const std::string what = options.region.kind == Region::Kind::Box ? "box" : "mask";
    if (count_nonzero(*region_source) == 0) throw ExplainError("the " + what + " region is empty: nothing to explain");
    if (count_nonzero(*region_model) == 0)
      throw ExplainError("the " + what + " region covers no voxel of the model's grid (too thin for its spacing)");
  }

  detail::EngineRequest request;
  for (const auto* l : labels) request.labels.push_back(l->value);
  request.method = options.method;
  request.score = options.score;
  request.region = region_model.GetPointer();
  request.overlap = options.segment.window.overlap;
  request.batch_size = options.segment.window.batch_size;
  request.mirror = options.segment.window.mirror;
  request.sigma_scale = options.segment.window.sigma_scale;
  request.uncertainty = options.uncertainty;
  request.mc_samples = options.mc_samples;
  request.seed = options.seed;
  request.occlusion_size = options.occlusion_size;
  request.progress = progress("explaining");
  detail::EngineResult pass = detail::run_windows(model, pre.channels, request);
  note(pass.decisions);

  // The segmentation from the same pass, as segment() makes it.
  Explanation out;
  t = Clock::now();
  seg::softmax(pass.logits);
  LabelImage::Pointer model_labels = seg::argmax(pass.logits);
  seg::Segmentation& s = out.segmentation;
  s.labels = seg::labels_to_source(*model_labels, source);
  if (options.segment.probabilities)
    for (std::size_t k = 0; k < pass.logits.size(); ++k)
      s.probabilities.push_back(seg::probability_to_source(*pass.logits[k], source, k == 0 ? 1.0f : 0.0f));
  pass.logits.clear();
  if (pre.resampled || pre.cropped)
    decisions.push_back(std::string("labels mapped back to the source grid by nearest neighbour, heatmaps linearly") +
                        (options.segment.probabilities ? ", probabilities linearly" : ""));
  note(seg::postprocess(*s.labels, options.segment.postprocess));
  s.statistics = seg::label_statistics(*s.labels, inputs[0].GetPointer(), card);
  const double t_back = since(t);

  // Targets on the model grid, emptiness checked before any further work.
  std::vector<LabelImage::Pointer> targets_model;
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    LabelImage::Pointer target = region_model ? region_model : binary(*model_labels, labels[i]->value);
    if (count_nonzero(*target) == 0 || pass.target_windows[i] == 0) {
      const std::string msg = fmt::format("label '{}' is not predicted anywhere in this volume: nothing to explain "
                                          "(give a box or a mask region to explain its score elsewhere)",
                                          labels[i]->name);
      if (!options.skip_empty) throw ExplainError(msg);
      decisions.push_back(msg);
      continue;
    }
    targets_model.push_back(target);
    keep.push_back(i);
  }

  // Sanity: the same maps from a copy of the model with randomised weights, same targets.
  std::vector<Image::Pointer> random_maps;
  double t_sanity = 0;
  if (options.sanity && !keep.empty()) {
    t = Clock::now();
    detail::EngineRequest r = request;
    r.labels.clear();
    for (std::size_t i : keep) r.labels.push_back(labels[i]->value);
    r.mirror = false;
    r.uncertainty = false;
    // The trained model's targets: its predicted labels (or the same box/mask).
    r.region = region_model ? region_model.GetPointer() : model_labels.GetPointer();
    r.region_is_label_map = !region_model;
    r.randomised = true;
    r.progress = progress("sanity check");
    random_maps = detail::run_windows(model, pre.channels, r).maps;
    t_sanity = since(t);
  }

  nlohmann::json label_reports = nlohmann::json::array();
  double t_deletion = 0;
  for (std::size_t j = 0; j < keep.size(); ++j) {
    const std::size_t i = keep[j];
    LabelExplanation e;
    e.value = labels[i]->value;
    e.name = labels[i]->name;
    Image& map = *pass.maps[i];
    float* p = map.GetBufferPointer();
    const std::size_t n = map.GetBufferedRegion().GetNumberOfPixels();
    e.raw_max = n ? double(*std::max_element(p, p + n)) : 0.0;
    if (e.raw_max > 0)
      for (std::size_t v = 0; v < n; ++v) p[v] = float(p[v] / e.raw_max);
    else
      decisions.push_back(fmt::format("label '{}': the {} map is zero everywhere (no positive evidence at layer '{}')",
                                      e.name, method_name(options.method), card.gradcam_layer));
    if (!random_maps.empty()) e.randomisation_correlation = correlation(map, *random_maps[j]);
    if (options.deletion) {
      t = Clock::now();
      if (options.progress && !options.progress("deletion curve", int(j), int(keep.size()))) throw ExplainError("cancelled");
      e.deletion = detail::deletion_curve(model, pre.channels, map, *targets_model[j], e.value, options.deletion_windows,
                                          options.deletion_steps, options.segment.window.overlap, options.seed);
      t_deletion += since(t);
    }
    e.heatmap = seg::probability_to_source(map, source, 0.0f);
    {
      // Linear resampling lowers a sharp peak: scaled again so that the source-grid map spans 0..1.
      float* h = e.heatmap->GetBufferPointer();
      const std::size_t m = e.heatmap->GetBufferedRegion().GetNumberOfPixels();
      const float peak = m ? *std::max_element(h, h + m) : 0.0f;
      for (std::size_t v = 0; v < m; ++v) h[v] = peak > 0 ? std::clamp(h[v] / peak, 0.0f, 1.0f) : 0.0f;
    }
    e.target = region_source ? region_source : binary(*s.labels, e.value);
    e.target_voxels = count_nonzero(*e.target);
    {
      const float* h = e.heatmap->GetBufferPointer();
      const auto* m = e.target->GetBufferPointer();
      double inside = 0, total = 0;
      for (std::size_t v = 0, c = e.heatmap->GetBufferedRegion().GetNumberOfPixels(); v < c; ++v) {
        total += h[v];
        if (m[v]) inside += h[v];
      }
      e.mass_in_target = total > 0 ? inside / total : 0.0;
    }
    e.report = {{"name", e.name},
                {"value", e.value},
                {"target_voxels", e.target_voxels},
                {"windows_with_target", pass.target_windows[i]},
                {"raw_max", e.raw_max},
                {"mass_in_target", e.mass_in_target},
                {"peak", peak_json(*e.heatmap)}};
    if (e.randomisation_correlation)
      e.report["randomisation"] = {{"correlation", *e.randomisation_correlation},
                                   {"passed", std::abs(*e.randomisation_correlation) < 0.5},
                                   {"how", "Pearson correlation with the map of a copy of the model whose weights are "
                                           "redrawn (normal, each tensor's mean and std), same targets"}};
    if (e.deletion) e.report["deletion"] = curve_json(*e.deletion);
    label_reports.push_back(e.report);
    out.labels.push_back(std::move(e));
  }
  if (pass.entropy) out.uncertainty = seg::probability_to_source(*pass.entropy, source, 0.0f);

  nlohmann::json stats = nlohmann::json::array();
  for (const auto& st : s.statistics) stats.push_back(seg::to_json(st));
  const nlohmann::json windows = {{"count", pass.windows},
                                  {"patch", card.dimensions == 2 ? std::vector<int>{card.patch_size[0], card.patch_size[1], 1}
                                                                 : card.patch_size},
                                  {"forward_passes", pass.forward_passes},
                                  {"backward_passes", pass.backward_passes},
                                  {"overlap", request.overlap},
                                  {"batch_size", request.batch_size},
                                  {"mirror", request.mirror}};
  const nlohmann::json timings = {{"preprocess", t_pre}, {"inference", pass.seconds},       {"to_source_grid", t_back},
                                  {"sanity", t_sanity},  {"deletion", t_deletion},          {"explain_total", since(t_start)}};
  s.report = {{"model_grid", sagitta::geometry_json(grid)},
              {"windows", windows},
              {"device", model.device()},
              {"decisions", decisions},
              {"timings_s", timings},
              {"labels", stats}};
  out.report = {{"method", method_name(options.method)},
                {"layer", options.method == Method::Occlusion ? "" : card.gradcam_layer},
                {"score", options.score == ScoreReduction::Sum ? "sum" : "mean"},
                {"region", options.region.kind == Region::Kind::Prediction ? "predicted mask (each window's own argmax)"
                           : options.region.kind == Region::Kind::Box    ? "box"
                                                                          : "mask"},
                {"upsampling", card.dimensions == 3 ? "trilinear to the patch, linear to the source grid"
                                                    : "bilinear to the patch, linear to the source grid"},
                {"blending", "Gaussian importance weights of the segmentation, over windows whose target is not empty"},
                {"normalisation", "divided by the largest blended value (raw_max) to 0..1, again after resampling to the source grid"},
                {"uncertainty", options.uncertainty},
                {"windows", windows},
                {"labels", label_reports},
                {"decisions", decisions},
                {"timings_s", timings}};
  if (options.region.kind == Region::Kind::Box) out.report["box"] = options.region.box;
  return out;
}

}  // namespace sagitta::explain

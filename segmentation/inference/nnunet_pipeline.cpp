// nnU-Net v2 results folders as Sagitta models: the card (card_from_nnunet), the way in
// (preprocess_nnunet) and the whole prediction (segment_nnunet), each step as nnU-Net's predictor
// takes it (nnunetv2/inference/predict_from_raw_data.py and export_prediction.py).
#include "nnunet_pipeline.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "confidence.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model_sources.h"
#include "sagitta/segmentation/nnunet.h"
#include "scores.h"

namespace sagitta::segmentation {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The folds nnU-Net's predictor would use: those asked for, else every numbered fold_N that has
// the checkpoint (auto_detect_available_folds; fold_all only when nothing else is there).
std::vector<std::string> chosen_folds(const nnunet::Plan& plan, const ModelSourceOptions& options) {
  const std::string file = "checkpoint_" + options.checkpoint + ".pth";
  const auto has = [&](const std::string& fold) {
    const auto it = plan.folds.find(fold);
    return it != plan.folds.end() &&
           std::any_of(it->second.begin(), it->second.end(), [&](const fs::path& p) { return p.filename() == file; });
  };
  std::vector<std::string> folds = options.folds;
  if (folds.empty()) {
    std::vector<std::pair<long, std::string>> numbered;
    for (const auto& [name, files] : plan.folds)
      if (name != "all" && has(name) && !name.empty() && std::all_of(name.begin(), name.end(), ::isdigit))
        numbered.emplace_back(std::stol(name), name);
    std::sort(numbered.begin(), numbered.end());
    for (const auto& n : numbered) folds.push_back(n.second);
    if (folds.empty() && has("all")) folds.push_back("all");
    if (folds.empty())
      throw SegmentationError(fmt::format("{}: no fold_N/{} (an nnU-Net results folder keeps its weights there)",
                                          plan.folder.string(), file));
  }
  std::set<std::string> seen;
  for (const auto& f : folds)
    if (!seen.insert(f).second) throw SegmentationError(fmt::format("fold {} is given twice", f));
  return folds;
}

// The plans' per-channel normalisation in the card's words (for the record: the plan itself
// normalises, in nnunet::normalise).
Normalization card_normalisation(const nnunet::Normalisation& n) {
  Normalization out;
  if (n.scheme == "CTNormalization") {
    out.scheme = Normalization::Scheme::CT;
    out.clip_low = n.percentile_00_5, out.clip_high = n.percentile_99_5, out.mean = n.mean, out.std = n.std;
  } else if (n.scheme == "ZScoreNormalization") {
    out.scheme = Normalization::Scheme::ZScore;
    out.mask = n.use_mask_for_norm ? Normalization::Mask::NonZero : Normalization::Mask::All;
  } else if (n.scheme == "RescaleTo01Normalization") {
    out.scheme = Normalization::Scheme::MinMax;
    out.mask = Normalization::Mask::All;
  } else if (n.scheme == "RGBTo01Normalization") {
    out.scheme = Normalization::Scheme::Range;
    out.a_min = 0, out.a_max = 255, out.b_min = 0, out.b_max = 1, out.clip = false;
  } else {
    out.scheme = Normalization::Scheme::None;
  }
  return out;
}

std::vector<int64_t> xyz(const nnunet::Shape& s) { return {s[2], s[1], s[0]}; }

}  // namespace

bool is_nnunet_results_folder(const fs::path& folder) {
  return fs::is_regular_file(folder / "plans.json") && fs::is_regular_file(folder / "dataset.json");
}

ModelCard card_from_nnunet(const fs::path& folder, const ModelSourceOptions& options) {
  if (options.checkpoint != "final" && options.checkpoint != "best")
    throw SegmentationError(fmt::format("--checkpoint {}: nnU-Net keeps 'final' and 'best'", options.checkpoint));
  const nnunet::Plan plan = nnunet::read_results_folder(folder);
  const std::vector<std::string> folds = chosen_folds(plan, options);
  ModelCard card;
  card.name = plan.dataset_name;
  card.version = fmt::format("{}__{}__{}", plan.trainer, plan.plans_name, plan.configuration);
  card.description = fmt::format("nnU-Net v2 {} model of {}, fold(s) {}, checkpoint_{}", plan.configuration,
                                 plan.dataset_name, fmt::join(folds, " "), options.checkpoint);
  card.format = "nnunet";
  card.weights = plan.checkpoint(folds[0], options.checkpoint);
  for (std::size_t i = 1; i < folds.size(); ++i) card.folds.push_back({plan.checkpoint(folds[i], options.checkpoint), ""});
  card.fold_average = "logits";  // predict_logits_from_preprocessed_data sums the folds' logits
  card.dimensions = plan.two_d ? 2 : 3;
  for (std::size_t c = 0; c < plan.channel_names.size(); ++c)
    card.channels.push_back({plan.channel_names[c], card_normalisation(plan.normalisation.at(c))});
  // The card's x y (z) are the network array's last, middle (and first) axes.
  card.spacing.assign(plan.spacing.rbegin(), plan.spacing.rend());
  card.patch_size.assign(plan.patch_size.rbegin(), plan.patch_size.rend());
  card.labels.push_back({});
  card.labels[0].name = "background";
  if (plan.has_regions) {
    card.activation = "sigmoid";
    std::size_t head = 0;
    for (const nnunet::Label& l : plan.labels) {
      if (std::none_of(l.values.begin(), l.values.end(), [](int v) { return v != 0; })) continue;
      const int value = plan.regions_class_order.at(head++);
      card.regions.push_back({l.values, value});
      Label label;
      label.value = value;
      label.name = l.name;
      card.labels.push_back(label);
    }
    card.unet = plan.architecture;
    card.unet["num_outputs"] = int(card.regions.size());
  } else {
    for (const nnunet::Label& l : plan.labels) {
      if (l.values.size() != 1) throw SegmentationError(plan.folder.string() + ": label '" + l.name + "' has several values");
      if (l.values[0] == 0) {
        card.labels[0].name = l.name;
        continue;
      }
      Label label;
      label.value = l.values[0];
      label.name = l.name;
      card.labels.push_back(label);
    }
    card.unet = plan.architecture;
  }
  std::sort(card.labels.begin(), card.labels.end(), [](const Label& a, const Label& b) { return a.value < b.value; });
  card.window_weights = "gaussian";
  card.sigma_scale = 1.0 / 8;
  card.overlap = 0.5;
  card.path = plan.folder;
  card.provenance = {{"source", detail::kNNUNetSource},
                     {"folder", plan.folder.string()},
                     {"trainer", plan.trainer},
                     {"plans", plan.plans_name},
                     {"configuration", plan.configuration},
                     {"folds", folds},
                     {"checkpoint", options.checkpoint},
                     {"image_reader_writer", plan.reader_name}};
  if (!plan.profile.source.empty()) card.training_profile = plan.profile;
  return card;
}

namespace {

// The labels logits give, per voxel: the argmax over the classes (the first of equals), or for
// region models the value of the last region whose logit is positive (later regions win).
std::vector<std::uint16_t> decisions_of(const std::vector<const float*>& planes, std::size_t n, const ModelCard& card) {
  std::vector<std::uint16_t> out(n, 0);
  if (card.regions.empty()) {
    if (!planes.empty()) detail::argmax_into(planes, n, out.data());
    return out;
  }
  std::vector<std::uint16_t> values;
  for (const auto& r : card.regions) values.push_back(std::uint16_t(r.value));
  detail::region_labels_into(planes, values, n, out.data());
  return out;
}

}  // namespace

namespace detail {

Preprocessed preprocess_nnunet(const std::vector<Image::Pointer>& inputs, const ModelCard& card) {
  const auto t0 = Clock::now();
  auto plan = std::make_shared<const nnunet::Plan>(nnunet::read_results_folder(card.path));
  nnunet::Preprocessed p = nnunet::preprocess(*plan, inputs);
  const nnunet::Properties& props = p.properties;
  Preprocessed out;
  for (auto& c : p.channels) {
    out.channels.push_back(nnunet::as_image(c));
    c = nnunet::Array();
  }
  out.cropped = props.shape_after_cropping != props.shape_before_cropping;
  out.resampled = props.new_shape != props.shape_after_cropping;
  std::vector<std::string> schemes;
  for (const auto& n : plan->normalisation) schemes.push_back(n.scheme + (n.use_mask_for_norm ? " (non-zero mask)" : ""));
  out.decisions.push_back(fmt::format(
      "nnU-Net {} preprocessing ({}): array {} (x y z of the reader's array), transpose_forward {}, cropped to the "
      "non-zero region {}, normalised by {}, resampled from {} to {} mm (array order) to {}",
      plan->configuration, plan->reader_name, xyz(props.shape_before_cropping), plan->transpose_forward,
      xyz(props.shape_after_cropping), fmt::join(schemes, ", "), props.original_spacing, props.target_spacing,
      xyz(props.new_shape)));
  out.nnunet_plan = plan;
  out.nnunet_properties = std::make_shared<const nnunet::Properties>(props);
  out.seconds = since(t0);
  return out;
}

Segmentation segment_nnunet(const Model& model, const std::vector<Image::Pointer>& inputs, Preprocessed pre,
                            const SegmentOptions& options) {
  const ModelCard& card = model.card();
  const nnunet::Plan& plan = *pre.nnunet_plan;
  const nnunet::Properties& props = *pre.nnunet_properties;
  nlohmann::json decisions = nlohmann::json::array();
  for (const auto& d : model.notes()) decisions.push_back(d);
  for (const auto& d : pre.decisions) decisions.push_back(d);

  // predict_sliding_window_return_logits per fold: nnU-Net's steps, Gaussian and zero padding,
  // float16 sums; the folds' logits summed and divided in float16.
  SlidingWindowOptions w = options.window;
  w.step_rule = StepRule::NnUNet;
  w.importance = ImportanceMap::NnUNet;
  w.pad = PadRule::Zero;
  w.half_sums = true;
  const int networks = int(card.folds.size()) + 1;
  std::vector<nnunet::Array> logits;
  // With several folds: per voxel, how many folds' own decision differs from the ensemble's
  // (counted once the ensemble is known; each fold's decision kept until then, 2 bytes a voxel).
  std::vector<std::vector<std::uint16_t>> fold_decisions;
  SlidingWindowResult windows;
  const auto t_windows = Clock::now();
  for (int k = 0; k < networks; ++k) {
    w.fold = k;
    if (options.window.progress)
      w.progress = [&, k](int done, int total) { return options.window.progress(k * total + done, networks * total); };
    SlidingWindowResult r = sliding_window(model, pre.channels, w);
    if (networks > 1) {
      std::vector<const float*> planes;
      for (const auto& l : r.logits) planes.push_back(l->GetBufferPointer());
      fold_decisions.push_back(decisions_of(planes, r.logits.empty() ? 0 : r.logits[0]->GetBufferedRegion().GetNumberOfPixels(), card));
    }
    for (std::size_t h = 0; h < r.logits.size(); ++h) {
      nnunet::Array a = nnunet::to_array(*r.logits[h], nnunet::AxisMap{});
      r.logits[h] = nullptr;
      if (k == 0) {
        logits.push_back(std::move(a));
        continue;
      }
      auto& sum = logits[h].values;
      for (std::size_t i = 0; i < sum.size(); ++i) sum[i] = nnunet::round_to_half(sum[i] + a.values[i]);
    }
    if (k == 0) windows = r;
    else windows.forward_passes += r.forward_passes, windows.forward_seconds += r.forward_seconds;
    windows.accumulator_peak_bytes = std::max(windows.accumulator_peak_bytes, r.accumulator_peak_bytes);
  }
  if (networks > 1)
    for (auto& a : logits)
      for (float& v : a.values) v = nnunet::round_to_half(v / float(networks));
  windows.total_seconds = since(t_windows);
  pre.channels.clear();
  for (const auto& d : windows.decisions) decisions.push_back(d);
  if (networks > 1) decisions.push_back(fmt::format("{} folds, their float16 logits averaged (nnU-Net's ensemble)", networks));

  auto t = Clock::now();
  // Confidence on the model grid, from the averaged logits (the labels there are their argmax).
  Segmentation out;
  {
    const std::size_t n = logits.empty() ? 0 : logits[0].values.size();
    std::vector<const float*> planes;
    for (const auto& a : logits) planes.push_back(a.values.data());
    std::vector<float> top(n), entropy(n);
    detail::confidence_from_scores(planes, n, !card.regions.empty(), top.data(), entropy.data());
    const std::vector<std::uint16_t> model_labels = decisions_of(planes, n, card);
    std::vector<float> fold_disagreement;
    if (!fold_decisions.empty()) {
      fold_disagreement.assign(n, 0.0f);
      for (const auto& d : fold_decisions)
        for (std::size_t i = 0; i < n; ++i) fold_disagreement[i] += d[i] != model_labels[i] ? 1.0f : 0.0f;
      for (float& v : fold_disagreement) v /= float(fold_decisions.size());
      fold_decisions.clear();
    }
    const auto& shape = logits.empty() ? nnunet::Shape{} : logits[0].shape;  // C order: z y x
    out.confidence = detail::structure_confidence(
        model_labels.data(), top.data(), entropy.data(), {std::size_t(shape[2]), std::size_t(shape[1]), std::size_t(shape[0])},
        card, nullptr, fold_disagreement.empty() ? nullptr : fold_disagreement.data());
  }
  nnunet::Exported e = nnunet::export_prediction(plan, props, logits, options.probabilities);
  logits.clear();
  out.labels = e.labels;
  out.probabilities = std::move(e.probabilities);
  decisions.push_back(fmt::format("nnU-Net export: logits resampled to {} (order {}), {}, uncropped into {}, "
                                  "transpose_backward {}",
                                  xyz(props.shape_after_cropping), plan.resample_probabilities.order,
                                  plan.has_regions ? "sigmoid regions > 0.5 in regions_class_order" : "softmax argmax",
                                  xyz(props.shape_before_cropping), plan.transpose_backward));
  const double t_back = since(t);

  t = Clock::now();
  for (const auto& d : postprocess(*out.labels, options.postprocess)) decisions.push_back(d);
  out.statistics = label_statistics(*out.labels, inputs[0].GetPointer(), card);
  const double t_post = since(t);

  nlohmann::json stats = nlohmann::json::array();
  for (const auto& s : out.statistics) stats.push_back(to_json(s));
  out.report = {{"model_grid", {{"size", xyz(props.new_shape)},
                                {"spacing", {props.target_spacing[2], props.target_spacing[1], props.target_spacing[0]}},
                                {"nnunet_bbox", props.bbox}}},
                {"windows", {{"count", windows.windows},
                             {"patch", windows.patch},
                             {"forward_passes", windows.forward_passes},
                             {"overlap", w.overlap},
                             {"batch_size", w.batch_size},
                             {"mirror", w.mirror},
                             {"folds", networks}}},
                {"device", model.device()},
                {"decisions", decisions},
                {"memory_bytes", {{"logit_tiles_peak", windows.accumulator_peak_bytes}}},
                {"timings_s", {{"preprocess", pre.seconds},
                               {"inference", windows.total_seconds},
                               {"forward", windows.forward_seconds},
                               {"to_source_grid", t_back},
                               {"postprocess", t_post}}},
                {"labels", stats}};
  nlohmann::json confidence_json = nlohmann::json::array();
  for (const auto& c : out.confidence) confidence_json.push_back(to_json(c));
  out.report["confidence"] = confidence_json;
  return out;
}

}  // namespace detail
}  // namespace sagitta::segmentation

// `sagitta explain`: a heatmap of where a segmentation model looked for a label (Grad-CAM family
// or occlusion), in the source geometry, with overlays, a montage, faithfulness and sanity numbers
// in a JSON report. A thin wrapper over sagitta::explain: parse, call explain(), write.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <sstream>

#include "command.h"
#include "explain_outputs.h"
#include "model_options.h"
#include "progress.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/explain/error.h"
#include "sagitta/segmentation/model_sources.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace xp = sagitta::explain;
namespace {

CommandSpec explain_spec() {
  CommandSpec s = command_spec("explain", "Sagitta Explain",
      "Explains a segmentation model's decision for a label with a heatmap in the source geometry: Grad-CAM, "
      "Grad-CAM++ or HiResCAM at the layer named by the model card (or model-agnostic occlusion sensitivity), "
      "computed per sliding window and blended with the segmentation's Gaussian weights. Writes the heatmap, "
      "overlay pictures, a montage of the most salient slices and a JSON report with a deletion curve and the "
      "model-randomisation sanity check.");
  Parameter label = parameter("label", ParamType::String, "label", "", "Label",
                              "Name of the label to explain, as in the model card (several: separated by commas)");
  label.required = true;
  Parameter method = choice("method", "method", {"gradcam", "gradcam++", "hirescam", "occlusion"}, "gradcam", "Method",
                            "gradcam, gradcam++ and hirescam need a model that returns an activation; occlusion works with any model");
  Parameter score = choice("score", "score", {"sum", "mean"}, "sum", "Score",
                           "The explained score: sum or mean of the label's logits over the target region");
  Parameter box = parameter("box", ParamType::String, "box", "", "Box region",
                            "Explain the score over this box instead of the predicted mask: voxel indices of the input "
                            "x0,y0,z0,x1,y1,z1 (inclusive)");
  Parameter mask = parameter("mask", ParamType::LabelImage, "mask", "", "Mask region",
                             "Explain the score over the non-zero voxels of this volume (any geometry) instead of the predicted mask");
  mask.channel = Channel::Input;
  Parameter occlusion = ranged(parameter("occlusion_size", ParamType::Integer, "occlusion-size", "0", "Occluder size",
                                  "Occlusion: edge of the occluding box in voxels (0: 1/8 of the patch, at least 4)"), 0, 512);

  Parameter heatmap = parameter("heatmap", ParamType::Image, "heatmap", "", "Heatmap volume",
                                "Also write the (first label's) heatmap to this file: float 0..1 in the input's geometry");
  heatmap.channel = Channel::Output;
  Parameter colormap = choice("colormap", "colormap", {"jet", "hot", "inferno", "viridis"}, "jet", "Colour map", "Colour map of the overlays");
  Parameter opacity = ranged(parameter("opacity", ParamType::Float, "opacity", "0.5", "Opacity", "Opacity of the heatmap colours over the slice"), 0, 1);
  Parameter threshold = ranged(parameter("threshold", ParamType::Float, "threshold", "0.2", "Threshold",
                                  "Heatmap values below this are not coloured"), 0, 1);
  Parameter window = ranged(parameter("window", ParamType::Float, "window", "0", "Window",
                               "Grey-scale window width of the slices (0: 400 for CT models, else the 1st-99th percentiles)"), 0);
  Parameter level = parameter("level", ParamType::Float, "level", "40", "Level", "Grey-scale window centre (used when --window is set)");
  Parameter slices = ranged(parameter("slices", ParamType::Integer, "slices", "6", "Montage slices", "Most salient axial slices in the montage"), 1, 64);

  Parameter uncertainty = switch_option("uncertainty", "uncertainty", "Uncertainty",
                                    "Also write uncertainty.nrrd: predictive entropy over mirroring TTA (and MC dropout when the model has dropout)");
  Parameter mc = ranged(parameter("mc_samples", ParamType::Integer, "mc-samples", "8", "MC dropout samples",
                           "Dropout samples per window for the uncertainty (models with dropout only)"), 1, 100);
  Parameter no_deletion = switch_option("no_deletion", "no-deletion", "Skip deletion curve",
                                    "Do not measure the deletion curve (faithfulness)");
  Parameter no_sanity = switch_option("no_sanity", "no-sanity", "Skip sanity check",
                                  "Do not run the model-randomisation sanity check (halves the run time)");

  std::vector<Parameter> input_group{model_inputs_parameter(true), model_card_parameter(), label, series_parameter()};
  for (const auto& p : model_source_parameters()) input_group.push_back(p);
  s.groups.push_back({"Input", "", input_group});
  s.groups.push_back({"Method", "", {method, score, box, mask, occlusion}});
  s.groups.push_back({"Output", "",
                      {output_folder_parameter("the heatmap, pictures and report.json"), heatmap, volume_format_parameter(),
                       colormap, opacity, threshold, window, level, slices}});
  s.groups.push_back({"Checks", "", {uncertainty, mc, no_deletion, no_sanity}, true});
  s.groups.push_back({"Inference", "", inference_parameters("Average the predictions (not the heatmap) over flips of every axis"), true});
  s.groups.push_back({"Reporting", "", {json_parameter(), no_progress_parameter()}, true});
  return s;
}

std::array<long, 6> parse_box(const std::string& text) {
  std::array<long, 6> box{};
  std::stringstream ss(text);
  std::string item;
  std::size_t n = 0;
  while (std::getline(ss, item, ',')) {
    if (n >= 6) break;
    try {
      std::size_t used = 0;
      box[n] = std::stol(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw xp::ExplainError("--box '" + text + "': expected six integers x0,y0,z0,x1,y1,z1");
    }
    ++n;
  }
  if (n != 6 || ss.rdbuf()->in_avail() > 0) throw xp::ExplainError("--box '" + text + "': expected six integers x0,y0,z0,x1,y1,z1");
  return box;
}

std::vector<std::string> split_labels(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  if (out.empty()) throw xp::ExplainError("--label: no label name given");
  return out;
}

// The method, score, region, checks and window options of the command line.
xp::ExplainOptions explain_options(const Arguments& a) {
  if (!a.text("box").empty() && !a.text("mask").empty()) throw xp::ExplainError("give either --box or --mask, not both");
  xp::ExplainOptions eo;
  eo.method = *xp::parse_method(a.text("method"));
  eo.score = a.text("score") == "mean" ? xp::ScoreReduction::Mean : xp::ScoreReduction::Sum;
  if (!a.text("box").empty()) {
    eo.region.kind = xp::Region::Kind::Box;
    eo.region.box = parse_box(a.text("box"));
  }
  apply_inference_options(a, eo.segment);
  eo.uncertainty = a.flag("uncertainty");
  eo.mc_samples = static_cast<int>(a.integer("mc_samples"));
  eo.deletion = !a.flag("no_deletion");
  eo.sanity = !a.flag("no_sanity");
  eo.occlusion_size = static_cast<int>(a.integer("occlusion_size"));
  return eo;
}

// Refuses what cannot work before anything big is loaded: the method on this model, unknown labels.
void check_request(const ModelCard& card, const xp::ExplainOptions& eo, const std::vector<std::string>& labels) {
  xp::check_method(card, eo.method);
  for (const auto& l : labels)
    if (!card.find_label(l)) {
      std::string known;
      for (const auto& c : card.labels)
        if (c.value != 0) known += (known.empty() ? "" : ", ") + c.name;
      throw xp::ExplainError(fmt::format("unknown label '{}'; the model's labels: {}", l, known));
    }
}

// Stages of the run as fractions of the bar: the explaining pass, the randomised pass, deletion.
void report_stages(xp::ExplainOptions& eo, Progress& progress) {
  const double explain_end = eo.sanity ? 0.55 : 0.9, sanity_end = 0.9;
  eo.progress = [&progress, explain_end, sanity_end, current = std::string()](const std::string& stage, int done,
                                                                              int total) mutable {
    if (stage != current) {
      current = stage;
      if (stage == "explaining") progress.stage(stage, 0.1, explain_end);
      else if (stage == "sanity check") progress.stage(stage, explain_end, sanity_end);
      else progress.stage(stage, sanity_end, 0.97);
    }
    return progress.update(done, total);
  };
}

PictureOptions picture_options(const Arguments& a) {
  PictureOptions po;
  po.overlay.map = *xp::parse_colormap(a.text("colormap"));
  po.overlay.opacity = a.real("opacity");
  po.overlay.threshold = a.real("threshold");
  po.slices = static_cast<int>(a.integer("slices"));
  if (a.real("window") > 0) {
    po.auto_window = false;
    po.overlay.window = a.real("window");
    po.overlay.level = a.real("level");
  }
  return po;
}

void print_summary(const Arguments& a, const nlohmann::json& report, const xp::Explanation& result, const fs::path& folder,
                   double seconds) {
  if (a.flag("json")) {
    std::cout << report.dump(2) << std::endl;
    return;
  }
  fmt::print("wrote {} ({}, {} windows, {:.1f} s)\n", folder.string(), a.text("method"), result.report["windows"]["count"].get<int>(),
             seconds);
  for (const auto& l : result.labels) {
    fmt::print("  {:<20} mass in target {:5.1f}%", l.name, 100 * l.mass_in_target);
    if (l.deletion) fmt::print("  deletion area {:.3f} (random order {:.3f})", l.deletion->area, l.deletion->random_area);
    if (l.randomisation_correlation) fmt::print("  randomised-model correlation {:.3f}", *l.randomisation_correlation);
    fmt::print("\n");
  }
}

// --heatmap FILE: the first label's heatmap outside the output folder, written beside its place
// and renamed in only when the folder's outputs are committed.
class HeatmapFile {
public:
  HeatmapFile(const Arguments& a, const xp::Explanation& result) : path_(a.text("heatmap")) {
    if (path_.empty()) return;
    staged_ = temporary_path(path_);
    write_volumes({result.labels.front().heatmap}, staged_, {OutputPixelType::Float, true});
  }
  ~HeatmapFile() {
    std::error_code ec;
    if (!staged_.empty()) fs::remove(staged_, ec);
  }
  void commit() {
    if (!staged_.empty()) fs::rename(staged_, path_);
    staged_.clear();
  }
  void describe(nlohmann::json& report) const {
    if (!path_.empty()) report["heatmap_file"] = fs::absolute(path_).string();
  }

private:
  fs::path path_, staged_;
};

int run_explain(const Arguments& a) {
  Stopwatch total, step;
  xp::ExplainOptions eo = explain_options(a);
  const std::vector<std::string> labels = split_labels(a.text("label"));
  StagedOutputs out(a.text("output"));
  Progress progress("Sagitta Explain", "Grad-CAM explanations of a segmentation", a.flag("no_progress") || a.flag("json"));
  progress.stage("loading model", 0.0, 0.05);
  const ModelCard card = open_model(a);
  check_request(card, eo, labels);
  const segmentation::Model model = load_model(card, a, "sagitta explain");
  const double t_model = step.lap();
  progress.stage("loading input", 0.05, 0.1);
  if (cancel_requested()) throw Cancelled();
  const auto inputs = open_inputs(a.list("inputs"), a, "explain");
  if (!a.text("mask").empty()) {
    eo.region.kind = xp::Region::Kind::Mask;
    eo.region.mask = read_volume(a.text("mask"));
  }
  const double t_load = step.lap();

  report_stages(eo, progress);
  xp::Explanation result = xp::explain(model, volumes_of(inputs), labels, eo);
  if (cancel_requested()) throw Cancelled();
  progress.stage("writing", 0.97, 1.0);
  step.lap();
  nlohmann::json report = {{"sagitta_version", kVersion}, {"command", "explain"}, {"inputs", inputs_json(inputs)},
                           {"model", model_json(a.text("model"), card, model)}, {"geometry", geometry_json(*inputs.front().volume)},
                           {"explanation", result.report}, {"segmentation", result.segmentation.report["labels"]}};
  report["pictures"] = write_explanation_files(result, *inputs.front().volume, card, out, volume_extension(a),
                                               picture_options(a), result.labels.size() > 1);
  HeatmapFile heatmap(a, result);
  heatmap.describe(report);
  report["outputs"] = out.names();
  report["timings_s"] = result.report["timings_s"];
  report["timings_s"].update({{"load_model", t_model}, {"load_input", t_load}, {"write", step.seconds()}, {"total", total.seconds()}});
  write_text_atomically(out.add("report.json"), report.dump(2) + "\n");
  if (cancel_requested()) throw Cancelled();
  out.commit();
  heatmap.commit();
  progress.finish();
  print_summary(a, report, result, out.folder(), total.seconds());
  return kExitOk;
}

}  // namespace

std::vector<Command> explain_commands() { return {{explain_spec(), run_explain}}; }

}  // namespace sagitta::cli

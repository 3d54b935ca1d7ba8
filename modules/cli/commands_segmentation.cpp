// `sagitta segment`: DICOM folders or volume files (or a study pulled from a PACS or DICOMweb) in; a label map
// (NRRD/NIfTI), optional probabilities, a DICOM SEG, Grad-CAM maps and a JSON report out, all
// appearing together. A thin wrapper over sagitta::segmentation: parse, call segment(), write.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <optional>

#include "batch_options.h"
#include "command.h"
#include "explain_outputs.h"
#include "run_main.h"
#include "model_options.h"
#include "remote_study.h"
#include "progress.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/segmentation/review.h"
#include "sagitta/dicom/seg.h"
#include "sagitta/dicom/rtstruct.h"
#include "sagitta/dicom/seg_from_card.h"
#include "sagitta/dicom/slicer_seg.h"
#include "sagitta/dicom/sr.h"
#include "sagitta/segmentation/model_sources.h"
#include "sagitta/segmentation/segment.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace seg = sagitta::segmentation;
namespace {

CommandSpec segment_spec() {
  CommandSpec s = command_spec("segment", "Sagitta Segment",
      "Segments a volume with a U-Net (TorchScript or native) described by a model card: resampled to the "
      "model's spacing, normalised, run by Gaussian-weighted sliding windows, and written back as a label map "
      "in the source geometry with per-label volumes in a JSON report.");
  Parameter inputs = model_inputs_parameter(false);
  inputs.index = 0;
  Parameter probabilities = switch_option("probabilities", "probabilities", "Probabilities",
                                      "Also write the per-class probabilities (a 4D float volume, 4th axis = label value)");
  Parameter dicom_seg = switch_option("dicom_seg", "dicom-seg", "DICOM SEG",
                                  "Also write seg.dcm: a DICOM SEG of the labels referencing the source images "
                                  "(DICOM input only)");
  Parameter seg_type = parameter("seg_type", ParamType::StringEnumeration, "seg-type", "binary", "SEG type",
                                 "binary: one 1-bit frame per label and slice (every reader); labelmap: Supplement 243 "
                                 "Label Map SEG, one frame per slice holding segment numbers (compact, newer readers)");
  seg_type.enumeration = {"binary", "labelmap"};
  Parameter dicom_sr = switch_option("dicom_sr", "dicom-sr", "DICOM SR",
                                 "Also write sr.dcm: a TID 1500 measurement report (volume in mL and mean intensity per "
                                 "structure) referencing the SEG's segments and the source series; implies --dicom-seg");
  Parameter rtstruct = switch_option("rtstruct", "rtstruct", "RTSTRUCT",
                                 "Also write rtstruct.dcm: an RT Structure Set with the labels as closed planar contours "
                                 "per source slice (DICOM input only)");
  Parameter slicer_seg = switch_option("slicer_seg", "slicer-seg", "Slicer segmentation",
                                   "Also write labels.seg.nrrd: the label map in 3D Slicer's segmentation layout "
                                   "(segment names, colours, terminology)");
  Parameter explain = switch_option("explain", "explain", "Explain",
                                "Also write a Grad-CAM heatmap per predicted label (heatmap_<label>, overlay and "
                                "montage PNGs), from the same pass over the windows as the segmentation");
  Parameter html = switch_option("html", "html", "HTML report",
                             "After report.json, also write report.html: the study's self-contained page (`sagitta "
                             "report`; a cohort: each study's page and the cohort's). Pictures need X (xvfb-run -a)");
  html.slicer = false;
  Parameter largest = switch_option("largest_component", "largest-component", "Largest component",
                                "Keep only the largest connected component of each label");
  Parameter holes = switch_option("fill_holes", "fill-holes", "Fill holes",
                              "Background enclosed by a single label becomes that label");
  Parameter min_size = ranged(parameter("min_size", ParamType::Integer, "min-size", "0", "Minimum component size",
                                 "Remove connected components smaller than this many voxels (0: keep all)"), 0);
  std::vector<Parameter> input_group{inputs, model_card_parameter(), series_parameter()};
  for (const auto& p : model_source_parameters()) input_group.push_back(p);
  s.groups.push_back({"Input", "", input_group});
  s.groups.push_back({"Output", "",
                      {output_folder_parameter("labels, probabilities and report.json"), volume_format_parameter(),
                       probabilities, dicom_seg, seg_type, dicom_sr, rtstruct, slicer_seg, explain, html}});
  s.groups.push_back({"PACS and DICOMweb", "", remote_study_parameters(), true});
  s.groups.push_back({"Inference", "", inference_parameters("Average the predictions over flips of every axis (8x slower in 3D)"), true});
  s.groups.push_back({"Postprocessing", "", {largest, holes, min_size}, true});
  Parameter review = parameter("review_threshold", ParamType::String, "review-threshold", "", "Review thresholds",
                                "Override a threshold of the review flags, NAME=VALUE (min_mean_probability, "
                                "max_border_entropy, max_intensity_z, spacing_factor, extent_factor, max_components, max_tta_disagreement, max_fold_disagreement); "
                                "otherwise the model card's, else the defaults (docs/review.md)");
  review.multiple = true;
  s.groups.push_back({"Reporting", "", {json_parameter(), no_progress_parameter(), review}, true});
  Parameter cohort = parameter("cohort", ParamType::File, "cohort", "", "Cohort",
                               "A cohort in one run, instead of input files: a CSV manifest (id,input[,label map] per row; "
                               "inputs are DICOM folders or volume files, relative to the manifest; a label map gives "
                               "Dice per label) or a folder with one study (a DICOM folder) per sub-folder. The model is "
                               "loaded once and the next study read while the current one runs; each study's outputs "
                               "appear whole in OUTPUT/<id>/ and batch.csv lists status, seconds, volumes (mL) and Dice "
                               "per study. Finished studies are skipped, so a killed run resumes; a bad study is one "
                               "line and the batch goes on (exit code 3 at the end)");
  cohort.channel = Channel::Input;
  cohort.slicer = false;
  s.groups.push_back({"Cohort", "", {cohort, shard_parameter("studies"), force_parameter("studies")}, true});
  return s;
}

seg::SegmentOptions segment_options(const Arguments& a) {
  seg::SegmentOptions so;
  apply_inference_options(a, so);
  so.postprocess.largest_component = a.flag("largest_component");
  so.postprocess.fill_holes = a.flag("fill_holes");
  so.postprocess.min_component_voxels = static_cast<std::size_t>(a.integer("min_size"));
  so.probabilities = a.flag("probabilities");
  return so;
}

// What the review knows besides the result: the input's DICOM modality and body part, the
// command line's thresholds, whether mirroring ran.
seg::ReviewContext review_context(const Arguments& a, const std::vector<dcm::OpenedVolume>& inputs, const seg::SegmentOptions& so) {
  seg::ReviewContext r;
  if (const auto& info = inputs.front().info) r.modality = info->modality, r.body_part = info->body_part;
  for (const std::string& item : a.list("review_threshold")) {
    const auto eq = item.find('=');
    char* end = nullptr;
    const double value = eq == std::string::npos ? 0 : std::strtod(item.c_str() + eq + 1, &end);
    if (eq == std::string::npos || end == item.c_str() + eq + 1 || *end != '\0')
      throw UsageError(fmt::format("--review-threshold {}: NAME=VALUE expected, e.g. min_mean_probability=0.9", item));
    try {
      set_threshold(r.overrides, item.substr(0, eq), value);
    } catch (const sagitta::Error& e) {
      throw UsageError(std::string("--review-threshold: ") + e.what());
    }
  }
  if (!a.list("review_threshold").empty()) r.overrides.source = "command line";
  r.mirrored = so.window.mirror;
  return r;
}

bool wants_dicom_objects(const Arguments& a) { return a.flag("dicom_seg") || a.flag("dicom_sr") || a.flag("rtstruct"); }

// seg.dcm (and with --dicom-sr, sr.dcm; with --rtstruct, rtstruct.dcm) of the labels found,
// referencing the first input's images; stored back with --pacs/--dicomweb before anything appears
// in the output folder (a refused store leaves nothing).
nlohmann::json write_dicom_objects(const Arguments& a, const seg::Segmentation& result, const dcm::OpenedVolume& source,
                                   const ModelCard& card, StagedOutputs& out, const RemoteStudy& remote) {
  const auto segments = dcm::segment_descriptions(card, dcm::labels_present(*result.labels));
  if (segments.empty()) return {{"seg", "not written: the model found none of its labels"}};
  nlohmann::json j;
  const dcm::SegWriteOptions seg_options = [&] {
    auto o = dcm::seg_write_options(card, kVersion);
    o.type = a.text("seg_type") == "labelmap" ? dcm::SegType::Labelmap : dcm::SegType::Binary;
    return o;
  }();
  std::vector<fs::path> files;
  if (a.flag("dicom_seg") || a.flag("dicom_sr") || remote.active()) {
    const fs::path file = out.add("seg.dcm");
    const auto w = dcm::write_seg(*result.labels, *source.volume, *source.info, segments, file, seg_options);
    j["seg"] = {{"file", "seg.dcm"}, {"type", a.text("seg_type")}, {"sop_instance_uid", w.sop_instance_uid},
                {"series_instance_uid", w.series_instance_uid}, {"frames", w.frames}};
    if (!w.notes.empty()) j["seg"]["notes"] = w.notes;  // what the SEG had to make up (anonymised sources)
    files.push_back(file);
  }
  if (a.flag("dicom_sr")) {
    dcm::SrWriteOptions o;
    o.algorithm_name = seg_options.algorithm_name;
    o.algorithm_version = seg_options.algorithm_version;
    o.software_version = seg_options.software_version;
    const fs::path file = out.add("sr.dcm");
    const auto w = dcm::write_measurement_report(*result.labels, *source.volume, *source.info, segments, files.front(), file, o);
    j["sr"] = {{"file", "sr.dcm"}, {"sop_instance_uid", w.sop_instance_uid}, {"series_instance_uid", w.series_instance_uid},
               {"structures", w.measurements.size()}};
    if (!w.notes.empty()) j["sr"]["notes"] = w.notes;
    files.push_back(file);
  }
  if (a.flag("rtstruct")) {
    dcm::RtStructWriteOptions o;
    o.algorithm_name = seg_options.algorithm_name;
    o.software_version = seg_options.software_version;
    const fs::path file = out.add("rtstruct.dcm");
    const auto w = dcm::write_rtstruct(*result.labels, *source.volume, *source.info, segments, file, o);
    j["rtstruct"] = {{"file", "rtstruct.dcm"}, {"sop_instance_uid", w.sop_instance_uid},
                     {"series_instance_uid", w.series_instance_uid}, {"contours_per_roi", w.contours_per_roi}};
    files.push_back(file);
  }
  if (remote.active())
    for (const auto& f : files) j[f.stem().string()].update(remote.store(f));
  return j;
}

nlohmann::json segment_report(const Arguments& a, const seg::Segmentation& result, const seg::SegmentOptions& so,
                              const std::vector<dcm::OpenedVolume>& inputs, nlohmann::json model, const RemoteStudy* remote) {
  nlohmann::json decisions = nlohmann::json::array();
  for (const auto& in : inputs)
    for (const auto& d : in.decisions) decisions.push_back(dcm::to_json(d));
  for (const auto& d : result.report["decisions"]) decisions.push_back(d);
  nlohmann::json input_json = inputs_json(inputs);
  if (remote && remote->active()) {
    const nlohmann::json source = remote->source();
    input_json.front()[source.contains("dicomweb") ? "dicomweb" : "pacs"] = source;
  }
  return {{"sagitta_version", kVersion},
          {"command", "segment"},
          {"inputs", input_json},
          {"model", std::move(model)},
          {"options", {{"overlap", so.window.overlap}, {"batch", so.window.batch_size}, {"mirror", so.window.mirror},
                       {"crop_body", so.preprocess.crop_to_body}, {"largest_component", so.postprocess.largest_component},
                       {"fill_holes", so.postprocess.fill_holes}, {"min_size", so.postprocess.min_component_voxels},
                       {"threads", a.integer("threads")}}},
          {"geometry", sagitta::geometry_json(*result.labels)},
          {"model_grid", result.report["model_grid"]},
          {"windows", result.report["windows"]},
          {"memory_bytes", result.report.value("memory_bytes", nlohmann::json::object())},
          {"decisions", decisions},
          {"labels", result.report["labels"]}};
}

void print_summary(const Arguments& a, const nlohmann::json& report, const seg::Segmentation& result, const fs::path& labels,
                   double seconds) {
  if (a.flag("json")) {
    std::cout << report.dump(2) << std::endl;
    return;
  }
  fmt::print("wrote {} ({} windows, {:.1f} s)\n", labels.string(), result.report["windows"]["count"].get<int>(), seconds);
  for (const auto& s : result.statistics)
    if (s.value != 0) fmt::print("  {:>3} {:<24} {:>10} voxels {:>10.2f} mL\n", s.value, s.name, s.voxels, s.volume_ml);
  const nlohmann::json& qa = report["qa"];
  if (!qa.value("needs_review", false)) return;
  fmt::print("NEEDS REVIEW:\n");
  for (const auto& f : qa["flags"]) fmt::print("  - {}\n", f["what"].get<std::string>());
  for (const auto& s : qa["structures"])
    for (const auto& f : s["flags"]) fmt::print("  - {}\n", f["what"].get<std::string>());
}

// One study's outputs, staged in `out`: labels, probabilities, DICOM SEG, explanation, and
// report.json last. `annotate` adds to the report before it is written. Shared by a single run
// and each study of a cohort, so both write the same files the same way.
struct StudyRun {
  seg::Segmentation result;
  nlohmann::json report;
};

struct StudyContext {
  StudyContext(const ModelCard& c, const seg::Model& m, nlohmann::json r) : card(c), model(m), model_report(std::move(r)) {}
  const ModelCard& card;
  const seg::Model& model;
  nlohmann::json model_report;
  const RemoteStudy* remote = nullptr;
  nlohmann::json timings;                             // load_model, load_input
  double total_before = 0;                            // seconds of the study spent before `total` started
  std::function<bool(int, int)> window_progress;      // (windows done, count)
  std::function<void(const char*, double, double)> stage;
  std::function<void(const seg::Segmentation&, nlohmann::json&)> annotate;
  seg::Preprocessed* preprocessed = nullptr;           // the inputs already preprocessed (cohorts), consumed
};

StudyRun segment_study(const Arguments& a, const StudyContext& c, const std::vector<dcm::OpenedVolume>& inputs,
                       StagedOutputs& out, const Stopwatch& total) {
  Stopwatch step;
  const bool dicom_objects = wants_dicom_objects(a) || (c.remote && c.remote->active());
  seg::SegmentOptions so = segment_options(a);
  // The card's overlap (a MONAI inferer's, nnU-Net's 0.5) unless --overlap was given.
  if (!a.given("overlap") && c.model.card().overlap) so.window.overlap = *c.model.card().overlap;
  if (c.stage) c.stage("sliding windows", 0.15, 0.95);
  so.window.progress = c.window_progress;
  std::optional<explain::Explanation> explanation;
  if (a.flag("explain")) explanation = segment_and_explain(c.model, volumes_of(inputs), so);
  StudyRun run;
  seg::Segmentation& result = run.result;
  if (explanation)
    result = std::move(explanation->segmentation);
  else if (c.preprocessed)
    result = seg::segment(c.model, volumes_of(inputs), std::move(*c.preprocessed), so);
  else
    result = seg::segment(c.model, volumes_of(inputs), so);
  if (cancel_requested()) throw Cancelled();
  if (c.stage) c.stage("writing", 0.95, 1.0);
  step.lap();

  const std::string ext = volume_extension(a);
  write_volumes_as<std::uint16_t>({result.labels}, out.add("labels" + ext), true);
  if (so.probabilities)
    write_volumes(result.probabilities, out.add("probabilities" + ext), {OutputPixelType::Float, true});
  if (a.flag("slicer_seg"))
    dcm::write_slicer_segmentation(*result.labels, dcm::segment_descriptions(c.card, dcm::labels_present(*result.labels)),
                                   out.add("labels.seg.nrrd"));
  const RemoteStudy none;
  const nlohmann::json dicom_json = dicom_objects
                                        ? write_dicom_objects(a, result, inputs.front(), c.card, out, c.remote ? *c.remote : none)
                                        : nlohmann::json::object();
  nlohmann::json& report = run.report;
  report = segment_report(a, result, so, inputs, c.model_report, c.remote);
  report["dicom"] = dicom_json;
  report["qa"] = seg::review(result, volumes_of(inputs), c.card, review_context(a, inputs, so));
  if (explanation) add_explanation_outputs(*explanation, *inputs.front().volume, c.card, out, ext, report);
  if (c.annotate) c.annotate(result, report);
  report["outputs"] = out.names();
  report["timings_s"] = result.report["timings_s"];
  report["timings_s"].update(c.timings);
  report["timings_s"].update({{"write", step.seconds()}, {"total", c.total_before + total.seconds()}});
  write_text_atomically(out.add("report.json"), report.dump(2) + "\n");
  if (cancel_requested()) throw Cancelled();  // the last point where nothing is visible yet
  return run;
}

int run_cohort(const Arguments& a);

// --html: the page of what was just committed, by `sagitta report` (in the executable that has
// VTK for the pictures). Its failure is the command's: the rest of the outputs stay.
int write_html(const Arguments& a, const fs::path& folder) {
  if (!a.flag("html")) return kExitOk;
  std::vector<std::string> args{"report", folder.string()};
  if (a.flag("json")) args.push_back("--quiet");
  const int code = run_sagitta(args, "segment --html");
  if (code != kExitOk) std::cerr << "sagitta segment: the outputs are written; report.html is not (exit " << code << ")\n";
  return code;
}

int run_segment(const Arguments& a) {
  if (!a.text("cohort").empty()) return run_cohort(a);
  Stopwatch total, step;
  Progress progress("Sagitta Segment", "U-Net segmentation with sliding windows", a.flag("no_progress") || a.flag("json"));
  StagedOutputs out(a.text("output"));
  const RemoteStudy remote(a, out.folder(), progress);
  const std::vector<std::string> paths = remote.inputs(a);
  if (paths.empty()) throw sagitta::Error("no input: give a DICOM folder or volume file, or --pacs/--dicomweb and --study");
  const bool dicom_objects = wants_dicom_objects(a) || remote.active();

  progress.stage("loading model", 0.0, 0.05);
  const ModelCard card = open_model(a);
  const seg::Model model = load_model(card, a, "sagitta segment");
  const double t_model = step.lap();
  progress.stage("loading input", 0.05, 0.15);
  if (cancel_requested()) throw Cancelled();
  const auto inputs = open_inputs(paths, a, "segment");
  if (dicom_objects && !inputs.front().info)
    throw sagitta::Error("--dicom-seg, --dicom-sr and --rtstruct need a DICOM series as the first input (they reference "
                         "source images)");
  const double t_load = step.lap();

  StudyContext c(card, model, model_json(a.text("model"), card, model));
  c.remote = &remote;
  c.timings = {{"load_model", t_model}, {"load_input", t_load}};
  c.window_progress = [&progress](int done, int count) { return progress.update(done, count); };
  c.stage = [&progress](const char* name, double from, double to) { progress.stage(name, from, to); };
  const StudyRun run = segment_study(a, c, inputs, out, total);
  out.commit();
  progress.finish();
  print_summary(a, run.report, run.result, out.folder() / ("labels" + volume_extension(a)), total.seconds());
  return write_html(a, out.folder());
}

// ---- cohorts -----------------------------------------------------------------------------------

// What decides a study's outputs besides its input: a finished study whose report records the
// same is skipped.
nlohmann::json cohort_settings(const Arguments& a, const ModelCard& card, const batch::Item& item) {
  nlohmann::json options;
  for (const char* f : {"probabilities", "dicom_seg", "dicom_sr", "rtstruct", "slicer_seg", "explain", "mirror", "crop_body",
                        "largest_component", "fill_holes"})
    options[f] = a.flag(f);
  options["seg_type"] = a.text("seg_type");
  options["overlap"] = a.real("overlap");
  options["batch"] = a.integer("batch");
  options["min_size"] = a.integer("min_size");
  options["format"] = a.text("format");
  options["series"] = a.text("series");
  return {{"model", {{"card_sha256", sha256_file(a.text("model"))}, {"weights_sha256", card.sha256}}},
          {"options", options},
          {"input", fs::absolute(item.input).lexically_normal().string()},
          {"reference", item.reference.empty() ? std::string() : fs::absolute(item.reference).lexically_normal().string()}};
}

// Dice of each card label (background excluded) between the labels and a reference on the same grid;
// null where both are empty.
nlohmann::json dice_per_label(const LabelImage& labels, const Image& reference, const ModelCard& card) {
  std::map<int, std::array<std::size_t, 3>> n;  // predicted, reference, both
  const std::size_t count = labels.GetBufferedRegion().GetNumberOfPixels();
  const auto* p = labels.GetBufferPointer();
  const auto* r = reference.GetBufferPointer();
  for (const auto& l : card.labels) n[l.value] = {0, 0, 0};
  for (std::size_t i = 0; i < count; ++i) {
    const int pv = p[i], rv = int(std::lround(r[i]));
    if (pv == rv) {
      if (auto it = n.find(pv); it != n.end()) it->second[0]++, it->second[1]++, it->second[2]++;
    } else {
      if (auto it = n.find(pv); it != n.end()) it->second[0]++;
      if (auto it = n.find(rv); it != n.end()) it->second[1]++;
    }
  }
  nlohmann::json dice = nlohmann::json::object();
  for (const auto& l : card.labels) {
    if (l.value == 0) continue;
    const auto& c = n[l.value];
    dice[l.name] = c[0] + c[1] ? nlohmann::json(2.0 * double(c[2]) / double(c[0] + c[1])) : nlohmann::json(nullptr);
  }
  return dice;
}

std::vector<batch::Column> cohort_columns(const ModelCard& card) {
  std::vector<batch::Column> c = batch::columns({"id", "status", "seconds", "input", "reference", "message"});
  for (const auto& l : card.labels)
    if (l.value != 0) c.push_back({"volume_" + l.name + "_ml", "volume_" + l.name});
  for (const auto& l : card.labels)
    if (l.value != 0) c.push_back({"dice_" + l.name, "dice_" + l.name});
  c.push_back({"needs_review", "needs_review"});
  c.push_back({"flags", "flags"});
  for (const auto& l : card.labels)
    if (l.value != 0) c.push_back({"confidence_" + l.name, "confidence_" + l.name});
  return c;
}

// A study's CSV cells from its report.
batch::Row cohort_cells(const nlohmann::json& report) {
  batch::Row row{{"seconds", fmt::format("{:.3f}", report["timings_s"].value("total", 0.0))}};
  for (const auto& l : report["labels"])
    if (l.value("value", 0) != 0) row["volume_" + l["name"].get<std::string>()] = fmt::format("{:.4f}", l["volume_ml"].get<double>());
  for (const auto& [name, d] : report["batch"]["dice"].items())
    if (!d.is_null()) row["dice_" + name] = fmt::format("{:.4f}", d.get<double>());
  if (report.contains("qa")) {
    const nlohmann::json& qa = report["qa"];
    row["needs_review"] = qa.value("needs_review", false) ? "1" : "0";
    std::string checks;
    auto add = [&](const nlohmann::json& flags) {
      for (const auto& f : flags) checks += (checks.empty() ? "" : ";") + f.value("subject", "") + ":" + f.value("check", "");
    };
    add(qa["flags"]);
    for (const auto& s : qa["structures"]) {
      add(s["flags"]);
      if (s.contains("mean_probability") && s["mean_probability"].is_number())
        row["confidence_" + s["name"].get<std::string>()] = fmt::format("{:.4f}", s["mean_probability"].get<double>());
    }
    row["flags"] = checks;
  }
  std::size_t windows = report["windows"].value("count", 0);
  row["detail"] = fmt::format("{} windows", windows);
  return row;
}

std::optional<nlohmann::json> finished_report(const fs::path& folder, const nlohmann::json& settings) {
  std::ifstream f(folder / "report.json");
  if (!f) return std::nullopt;
  try {
    nlohmann::json report = nlohmann::json::parse(f);
    if (report["batch"].value("settings", nlohmann::json()) != settings) return std::nullopt;
    for (const auto& name : report["outputs"])
      if (!fs::exists(folder / name.get<std::string>())) return std::nullopt;
    return report;
  } catch (const std::exception&) {
    return std::nullopt;  // damaged or not ours: recompute
  }
}

// What the prefetch thread reads and prepares for one study.
struct Loaded {
  std::vector<dcm::OpenedVolume> inputs;
  Image::Pointer reference;
  std::optional<seg::Preprocessed> preprocessed;  // resampled and normalised for the model (not with --explain)
  double seconds = 0;
};

int run_cohort(const Arguments& a) {
  if (!a.list("inputs").empty() || !a.text("pacs").empty() || !a.text("dicomweb").empty())
    throw UsageError("--cohort takes its studies from the manifest or folder: give no input files, --pacs or --dicomweb");
  if (a.flag("json")) throw UsageError("--json prints one study's report: with --cohort, read batch.csv and OUTPUT/<id>/report.json");
  if (a.text("output").empty()) throw UsageError("--cohort needs -o/--output folder");
  Stopwatch step;
  const fs::path cohort = a.text("cohort");
  const std::vector<batch::Item> studies = fs::is_directory(cohort) ? batch::items_from_folder(cohort) : batch::read_csv_manifest(cohort);
  if (studies.empty()) throw UsageError(cohort.string() + ": no studies (a manifest row is id,input[,label map]; a folder has one sub-folder per study)");
  batch::Job job;
  job.output = a.text("output");
  job.shard = batch::choose_shard(a.text("shard"));
  job.force = a.flag("force");
  job.noun = "study";

  const ModelCard card = open_model(a);
  const seg::Model model = load_model(card, a, "sagitta segment");
  const double t_model = step.lap();
  job.columns = cohort_columns(card);
  BatchConsole console("Sagitta Segment", "U-Net segmentation of a cohort", a.flag("no_progress"));
  console.attach(job, studies.size(), "studies");
  const nlohmann::json model_report = model_json(a.text("model"), card, model);
  const bool dicom_objects = wants_dicom_objects(a);

  job.finished = [&](const batch::Item& item, const fs::path& folder) -> std::optional<batch::Row> {
    if (auto report = finished_report(folder, cohort_settings(a, card, item))) return cohort_cells(*report);
    return std::nullopt;
  };
  // On the prefetch thread: reading and preprocessing (DCMTK/ITK), no LibTorch.
  job.prepare = [&](const batch::Item& item) -> batch::Job::Work {
    Stopwatch read;
    std::error_code ec;
    if (!fs::exists(item.input, ec)) throw sagitta::Error("input " + item.input.string() + " does not exist (" + item.origin + ")");
    auto loaded = std::make_shared<Loaded>();
    loaded->inputs = open_inputs({item.input.string()}, a, "segment");
    if (dicom_objects && !loaded->inputs.front().info)
      throw sagitta::Error("--dicom-seg, --dicom-sr and --rtstruct need a DICOM series as the input (they reference "
                           "source images)");
    if (!item.reference.empty()) {
      if (!fs::exists(item.reference, ec))
        throw sagitta::Error("label map " + item.reference.string() + " does not exist (" + item.origin + ")");
      loaded->reference = read_volume(item.reference);
      if (!seg::same_grid(*loaded->reference, *loaded->inputs.front().volume))
        throw sagitta::Error("label map " + item.reference.string() + " is not on the input's grid (size, origin, "
                             "spacing and direction must match) (" + item.origin + ")");
    }
    if (!a.flag("explain"))
      loaded->preprocessed = seg::preprocess(volumes_of(loaded->inputs), card, segment_options(a).preprocess);
    loaded->seconds = read.seconds() - (loaded->preprocessed ? loaded->preprocessed->seconds : 0.0);
    return [&, item, loaded](const fs::path& staging) {
      Stopwatch total;
      StagedOutputs out(staging);
      StudyContext c(card, model, model_report);
      // The model was loaded once for the cohort; the study's total is its reading and
      // preprocessing (on the prefetch thread) and its work here.
      c.timings = {{"load_model", t_model}, {"load_input", loaded->seconds}};
      c.total_before = loaded->seconds + (loaded->preprocessed ? loaded->preprocessed->seconds : 0.0);
      if (loaded->preprocessed) c.preprocessed = &*loaded->preprocessed;
      c.window_progress = [&console](int done, int count) { return console.update(count ? double(done) / count : 1.0); };
      c.annotate = [&](const seg::Segmentation& result, nlohmann::json& report) {
        report["batch"] = {{"id", item.id}, {"listed", item.origin}, {"settings", cohort_settings(a, card, item)},
                           {"reference", item.reference.empty() ? nlohmann::json(nullptr) : nlohmann::json(item.reference.string())},
                           {"dice", loaded->reference ? dice_per_label(*result.labels, *loaded->reference, card)
                                                      : nlohmann::json::object()}};
      };
      const StudyRun run = segment_study(a, c, loaded->inputs, out, total);
      out.commit();
      return cohort_cells(run.report);
    };
  };
  const int code = console.finish(batch::run(studies, job), "sagitta segment");
  if (code == kExitCancelled || code == kExitUsage) return code;
  const int html = write_html(a, job.output);
  return code != kExitOk ? code : html;
}

}  // namespace

std::vector<Command> segmentation_commands() { return {{segment_spec(), run_segment}}; }

}  // namespace sagitta::cli

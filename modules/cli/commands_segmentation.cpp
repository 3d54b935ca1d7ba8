// `sagitta segment`: DICOM folders or volume files (or a study pulled from a PACS) in; a label map
// (NRRD/NIfTI), optional probabilities, a DICOM SEG, Grad-CAM maps and a JSON report out, all
// appearing together. A thin wrapper over sagitta::segmentation: parse, call segment(), write.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <optional>
#include <unistd.h>

#include "command.h"
#include "explain_outputs.h"
#include "model_options.h"
#include "pacs_options.h"
#include "progress.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/dicom/pacs.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/dicom/seg.h"
#include "sagitta/dicom/seg_from_card.h"
#include "sagitta/segmentation/segment.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace seg = sagitta::segmentation;
namespace {

std::vector<Parameter> pacs_parameters() {
  Parameter pacs = parameter("pacs", ParamType::String, "pacs", "", "PACS",
                             "AE@host:port of a PACS: retrieve --study from it (C-GET), segment it, and store the "
                             "DICOM SEG back (C-STORE); the input folder argument is then not needed");
  Parameter study = parameter("study", ParamType::String, "study", "", "Study", "StudyInstanceUID to retrieve with --pacs");
  std::vector<Parameter> group{pacs, study};
  // Our AE title and timeouts; host, port and the PACS' AE title come from --pacs.
  for (const auto& p : pacs_peer_parameters())
    if (p.name == "pacs_aet" || p.name == "pacs_timeout" || p.name == "pacs_dimse_timeout") group.push_back(p);
  for (auto& p : group) p.slicer = false;
  return group;
}

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
  Parameter explain = switch_option("explain", "explain", "Explain",
                                "Also write a Grad-CAM heatmap per predicted label (heatmap_<label>, overlay and "
                                "montage PNGs), from the same pass over the windows as the segmentation");
  Parameter largest = switch_option("largest_component", "largest-component", "Largest component",
                                "Keep only the largest connected component of each label");
  Parameter holes = switch_option("fill_holes", "fill-holes", "Fill holes",
                              "Background enclosed by a single label becomes that label");
  Parameter min_size = ranged(parameter("min_size", ParamType::Integer, "min-size", "0", "Minimum component size",
                                 "Remove connected components smaller than this many voxels (0: keep all)"), 0);
  s.groups.push_back({"Input", "", {inputs, model_card_parameter(), series_parameter()}});
  s.groups.push_back({"Output", "",
                      {output_folder_parameter("labels, probabilities and report.json"), volume_format_parameter(),
                       probabilities, dicom_seg, explain}});
  s.groups.push_back({"PACS", "", pacs_parameters(), true});
  s.groups.push_back({"Inference", "", inference_parameters("Average the predictions over flips of every axis (8x slower in 3D)"), true});
  s.groups.push_back({"Postprocessing", "", {largest, holes, min_size}, true});
  s.groups.push_back({"Reporting", "", {json_parameter(), no_progress_parameter()}, true});
  return s;
}

// --pacs/--study: the study retrieved (C-GET) into a hidden folder of the outputs, removed when
// the run ends; the DICOM SEG goes back with store().
class PacsStudy {
public:
  PacsStudy(const Arguments& a, const fs::path& outputs, Progress& progress) {
    if (a.text("pacs").empty()) return;
    if (a.text("study").empty()) throw sagitta::Error("--pacs needs --study <StudyInstanceUID>");
    if (!a.list("inputs").empty()) throw sagitta::Error("give either input folders/files or --pacs, not both");
    peer_ = pacs_peer(a);
    parse_pacs_address(a.text("pacs"), peer_);
    folder_ = outputs / (".sagitta-pacs-study-" + std::to_string(::getpid()));
    progress.stage("retrieving from PACS", 0.0, 0.05);
    try {
      dcm::pacs_get(peer_, dcm::QueryLevel::Study, {{"StudyInstanceUID", a.text("study")}}, folder_,
                    [&progress](std::size_t done, std::size_t total) {
                      return total ? progress.update(static_cast<long long>(done), static_cast<long long>(total))
                                   : !cancel_requested();
                    });
      if (cancel_requested()) throw Cancelled();
    } catch (...) {
      std::error_code ec;
      fs::remove_all(folder_, ec);
      throw;
    }
  }
  ~PacsStudy() {
    std::error_code ec;
    if (!folder_.empty()) fs::remove_all(folder_, ec);
  }
  bool active() const { return !folder_.empty(); }
  std::vector<std::string> inputs(const Arguments& a) const { return active() ? std::vector<std::string>{folder_.string()} : a.list("inputs"); }
  // Stores `file` on the PACS; what the report says about it.
  nlohmann::json store(const fs::path& file) const {
    if (cancel_requested()) throw Cancelled();
    const auto stored = dcm::pacs_store(peer_, {file});
    return {{"stored_to", fmt::format("{}@{}:{}", peer_.called_ae, peer_.host, peer_.port)},
            {"stored", stored.sent}};
  }

private:
  dcm::PacsPeer peer_;
  fs::path folder_;
};

seg::SegmentOptions segment_options(const Arguments& a) {
  seg::SegmentOptions so;
  apply_inference_options(a, so);
  so.postprocess.largest_component = a.flag("largest_component");
  so.postprocess.fill_holes = a.flag("fill_holes");
  so.postprocess.min_component_voxels = static_cast<std::size_t>(a.integer("min_size"));
  so.probabilities = a.flag("probabilities");
  return so;
}

// seg.dcm of the labels found, referencing the first input's images; stored back with --pacs
// before anything appears in the output folder (a refused store leaves nothing).
nlohmann::json write_dicom_seg(const seg::Segmentation& result, const dcm::OpenedVolume& source, const ModelCard& card,
                               StagedOutputs& out, const PacsStudy& pacs) {
  const auto segments = dcm::segment_descriptions(card, dcm::labels_present(*result.labels));
  if (segments.empty()) return "not written: the model found none of its labels";
  const fs::path file = out.add("seg.dcm");
  const auto w = dcm::write_seg(*result.labels, *source.volume, *source.info, segments, file, dcm::seg_write_options(card, kVersion));
  nlohmann::json j = {{"file", "seg.dcm"}, {"sop_instance_uid", w.sop_instance_uid},
                      {"series_instance_uid", w.series_instance_uid}, {"frames", w.frames}};
  if (!w.notes.empty()) j["notes"] = w.notes;  // what the SEG had to make up (anonymised sources)
  if (pacs.active()) j.update(pacs.store(file));
  return j;
}

nlohmann::json segment_report(const Arguments& a, const seg::Segmentation& result, const seg::SegmentOptions& so,
                              const std::vector<dcm::OpenedVolume>& inputs, nlohmann::json model) {
  nlohmann::json decisions = nlohmann::json::array();
  for (const auto& in : inputs)
    for (const auto& d : in.decisions) decisions.push_back(dcm::to_json(d));
  for (const auto& d : result.report["decisions"]) decisions.push_back(d);
  nlohmann::json input_json = inputs_json(inputs);
  if (!a.text("pacs").empty()) input_json.front()["pacs"] = {{"peer", a.text("pacs")}, {"study", a.text("study")}};
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
}

int run_segment(const Arguments& a) {
  Stopwatch total, step;
  Progress progress("Sagitta Segment", "U-Net segmentation with sliding windows", a.flag("no_progress") || a.flag("json"));
  StagedOutputs out(a.text("output"));
  const PacsStudy pacs(a, out.folder(), progress);
  const std::vector<std::string> paths = pacs.inputs(a);
  if (paths.empty()) throw sagitta::Error("no input: give a DICOM folder or volume file, or --pacs and --study");
  const bool dicom_seg = a.flag("dicom_seg") || pacs.active();

  progress.stage("loading model", 0.0, 0.05);
  const ModelCard card = load_card(a.text("model"));
  const seg::Model model = load_model(card, a, "sagitta segment");
  const double t_model = step.lap();
  progress.stage("loading input", 0.05, 0.15);
  if (cancel_requested()) throw Cancelled();
  const auto inputs = open_inputs(paths, a, "segment");
  if (dicom_seg && !inputs.front().info)
    throw sagitta::Error("--dicom-seg needs a DICOM series as the first input (a SEG references source images)");
  const double t_load = step.lap();

  seg::SegmentOptions so = segment_options(a);
  progress.stage("sliding windows", 0.15, 0.95);
  so.window.progress = [&progress](int done, int count) { return progress.update(done, count); };
  std::optional<explain::Explanation> explanation;
  if (a.flag("explain")) explanation = segment_and_explain(model, volumes_of(inputs), so);
  seg::Segmentation result = explanation ? std::move(explanation->segmentation) : seg::segment(model, volumes_of(inputs), so);
  if (cancel_requested()) throw Cancelled();
  progress.stage("writing", 0.95, 1.0);
  step.lap();

  const std::string ext = volume_extension(a);
  write_volumes_as<std::uint16_t>({result.labels}, out.add("labels" + ext), true);
  if (so.probabilities)
    write_volumes(result.probabilities, out.add("probabilities" + ext), {OutputPixelType::Float, true});
  const nlohmann::json seg_json = dicom_seg ? write_dicom_seg(result, inputs.front(), card, out, pacs) : nlohmann::json();
  nlohmann::json report = segment_report(a, result, so, inputs, model_json(a.text("model"), card, model));
  report["dicom"] = seg_json.is_null() ? nlohmann::json::object() : nlohmann::json{{"seg", seg_json}};
  if (explanation) add_explanation_outputs(*explanation, *inputs.front().volume, card, out, ext, report);
  report["outputs"] = out.names();
  report["timings_s"] = result.report["timings_s"];
  report["timings_s"].update({{"load_model", t_model}, {"load_input", t_load}, {"write", step.seconds()}, {"total", total.seconds()}});
  write_text_atomically(out.add("report.json"), report.dump(2) + "\n");
  if (cancel_requested()) throw Cancelled();  // the last point where nothing is visible yet
  out.commit();
  progress.finish();
  print_summary(a, report, result, out.folder() / ("labels" + ext), total.seconds());
  return kExitOk;
}

}  // namespace

std::vector<Command> segmentation_commands() { return {{segment_spec(), run_segment}}; }

}  // namespace sagitta::cli

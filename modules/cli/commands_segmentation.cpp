// `sagitta segment`: DICOM folders or volume files in, a label map (NRRD/NIfTI), optional
// probabilities and a JSON report out. A thin wrapper over sagitta::segmentation.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <unistd.h>

#include "command.h"
#include "dicom_seg_output.h"
#include "pacs_options.h"
#include "explain_outputs.h"
#include "progress.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/pacs.h"
#include "sagitta/dicom/seg.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/volume_io.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/segmentation/model_card.h"
#include "sagitta/segmentation/segment.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace seg = sagitta::segmentation;
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

CommandSpec segment_spec() {
  CommandSpec s;
  s.name = "segment";
  s.title = "Sagitta Segment";
  s.description =
      "Segments a volume with a U-Net (TorchScript or native) described by a model card: resampled to the "
      "model's spacing, normalised, run by Gaussian-weighted sliding windows, and written back as a label map "
      "in the source geometry with per-label volumes in a JSON report.";
  Parameter inputs;
  inputs.name = "inputs";
  inputs.type = ParamType::Image;
  inputs.index = 0;
  inputs.multiple = true;
  inputs.channel = Channel::Input;
  inputs.label = "Input";
  inputs.description = "A DICOM folder or a volume file (NRRD, NIfTI...) per model input channel";

  Parameter model = parameter("model", ParamType::File, "model", "", "Model card", "The model's card (model.json beside its weights)");
  model.required = true;
  model.channel = Channel::Input;
  Parameter out = parameter("output", ParamType::Directory, "output", "", "Output folder",
                       "Folder for labels, probabilities and report.json (created if needed)");
  out.flag = "o";
  out.required = true;
  out.channel = Channel::Output;
  Parameter format = parameter("format", ParamType::StringEnumeration, "format", "nrrd", "Format", "Volume format of the outputs");
  format.enumeration = {"nrrd", "nifti"};
  Parameter probabilities = parameter("probabilities", ParamType::Boolean, "probabilities", "false", "Probabilities",
                                 "Also write the per-class probabilities (a 4D float volume, 4th axis = label value)");
  Parameter series = parameter("series", ParamType::String, "series", "", "Series",
                          "Stack id, SeriesNumber or SeriesInstanceUID when a DICOM folder holds several");
  Parameter dicom_seg = parameter("dicom_seg", ParamType::Boolean, "dicom-seg", "false", "DICOM SEG",
                                  "Also write seg.dcm: a DICOM SEG of the labels referencing the source images "
                                  "(DICOM input only)");
  Parameter pacs = parameter("pacs", ParamType::String, "pacs", "", "PACS",
                             "AE@host:port of a PACS: retrieve --study from it (C-GET), segment it, and store the "
                             "DICOM SEG back (C-STORE); the input folder argument is then not needed");
  pacs.slicer = false;
  Parameter study = parameter("study", ParamType::String, "study", "", "Study", "StudyInstanceUID to retrieve with --pacs");
  study.slicer = false;

  Parameter device = parameter("device", ParamType::StringEnumeration, "device", "cpu", "Device",
                          "cuda when LibTorch has a GPU (falls back to the CPU with a note), else cpu");
  device.enumeration = {"cpu", "cuda"};
  Parameter threads = parameter("threads", ParamType::Integer, "threads", "0", "Threads", "LibTorch and decoding threads (0: all cores)");
  threads.minimum = 0;
  threads.maximum = 256;
  Parameter overlap = parameter("overlap", ParamType::Float, "overlap", "0.5", "Window overlap",
                           "Fraction of a patch shared by neighbouring windows");
  overlap.minimum = 0;
  overlap.maximum = 0.95;
  Parameter batch = parameter("batch", ParamType::Integer, "batch", "1", "Batch size", "Windows per forward pass");
  batch.minimum = 1;
  batch.maximum = 64;
  Parameter mirror = parameter("mirror", ParamType::Boolean, "mirror", "false", "Mirroring TTA",
                          "Average the predictions over flips of every axis (8x slower in 3D)");
  Parameter crop = parameter("crop_body", ParamType::Boolean, "crop-body", "false", "Crop to body",
                        "Run the model only on the body's bounding box (CT: voxels above -500 HU)");
  Parameter largest = parameter("largest_component", ParamType::Boolean, "largest-component", "false", "Largest component",
                           "Keep only the largest connected component of each label");
  Parameter holes = parameter("fill_holes", ParamType::Boolean, "fill-holes", "false", "Fill holes",
                         "Background enclosed by a single label becomes that label");
  Parameter min_size = parameter("min_size", ParamType::Integer, "min-size", "0", "Minimum component size",
                            "Remove connected components smaller than this many voxels (0: keep all)");
  min_size.minimum = 0;
  Parameter json = parameter("json", ParamType::Boolean, "json", "false", "JSON output", "Print the report on stdout");
  json.slicer = false;
  Parameter quiet = parameter("no_progress", ParamType::Boolean, "no-progress", "false", "No progress bar",
                         "Do not draw a progress bar even on a terminal");
  quiet.slicer = false;

  s.groups.push_back({"Input", "", {inputs, model, series}});
  Parameter explain = parameter("explain", ParamType::Boolean, "explain", "false", "Explain",
                                "Also write a Grad-CAM heatmap per predicted label (heatmap_<label>, overlay and "
                                "montage PNGs), from the same pass over the windows as the segmentation");
  s.groups.push_back({"Output", "", {out, format, probabilities, dicom_seg, explain}});
  {
    // PACS: --pacs and --study, plus our AE title and timeouts (host, port and the PACS' AE
    // title come from --pacs).
    std::vector<Parameter> pacs_group{pacs, study};
    for (const auto& p : pacs_peer_parameters())
      if (p.name == "pacs_aet" || p.name == "pacs_timeout" || p.name == "pacs_dimse_timeout") pacs_group.push_back(p);
    s.groups.push_back({"PACS", "", pacs_group, true});
  }
  s.groups.push_back({"Inference", "", {device, threads, overlap, batch, mirror, crop}, true});
  s.groups.push_back({"Postprocessing", "", {largest, holes, min_size}, true});
  s.groups.push_back({"Reporting", "", {json, quiet}, true});
  return s;
}

struct LoadedInput {
  dcm::Image::Pointer volume;
  std::optional<dcm::SeriesInfo> info;  // DICOM inputs: what a DICOM SEG must reference
  nlohmann::json description;
  std::vector<dcm::Decision> decisions;
};

// A DICOM folder (scanned, one stack selected) or a volume file.
LoadedInput load_input(const fs::path& path, const Arguments& a) {
  LoadedInput in;
  if (fs::is_directory(path)) {
    dcm::ScanOptions so;
    so.threads = static_cast<int>(a.integer("threads"));
    const auto scan = dcm::scan({path}, so);
    const dcm::Stack& stack = dcm::select_stack(scan, a.text("series"));
    dcm::LoadOptions lo;
    lo.threads = so.threads;
    auto loaded = dcm::load(stack, lo);
    if (loaded.volumes.size() != 1)
      throw seg::SegmentationError(fmt::format("{}: stack {} has {} volumes (a time series); segment one volume at a time",
                                               path.string(), stack.id, loaded.volumes.size()));
    in.volume = loaded.volumes.front();
    in.info = loaded.info;
    in.description = {{"path", path.string()}, {"kind", "dicom"}, {"stack", dcm::to_json(stack)}};
    in.decisions = scan.decisions;
    in.decisions.insert(in.decisions.end(), loaded.decisions.begin(), loaded.decisions.end());
  } else if (fs::exists(path)) {
    in.volume = dcm::read_volume(path);
    in.description = {{"path", path.string()}, {"kind", "volume"}};
  } else {
    throw seg::SegmentationError(path.string() + ": no such file or folder");
  }
  in.description["geometry"] = dcm::geometry_json(*in.volume);
  return in;
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f.flush()) throw seg::SegmentationError(path.string() + ": cannot write");
}

int run_segment(const Arguments& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path card_path = a.text("model");
  const fs::path out_dir = a.text("output");
  const bool nifti = a.text("format") == "nifti";
  const std::string ext = nifti ? ".nii.gz" : ".nrrd";
  if (fs::exists(out_dir) && !fs::is_directory(out_dir))
    throw seg::SegmentationError(out_dir.string() + " exists and is not a folder");

  Progress progress("Sagitta Segment", "U-Net segmentation with sliding windows", a.flag("no_progress") || a.flag("json"));

  // --pacs: the study is retrieved into a hidden folder of the output folder, removed at the end.
  const bool from_pacs = !a.text("pacs").empty();
  const bool dicom_seg = a.flag("dicom_seg") || from_pacs;
  std::vector<std::string> input_paths = a.list("inputs");
  dcm::PacsPeer peer;
  struct RemoveOnExit {
    fs::path dir;
    ~RemoveOnExit() {
      std::error_code ec;
      if (!dir.empty()) fs::remove_all(dir, ec);
    }
  } retrieved;
  bool created_for_pacs = false;
  if (from_pacs) {
    if (a.text("study").empty()) throw dcm::DicomError("--pacs needs --study <StudyInstanceUID>");
    if (!input_paths.empty()) throw seg::SegmentationError("give either input folders/files or --pacs, not both");
    peer = pacs_peer(a);
    parse_pacs_address(a.text("pacs"), peer);
    created_for_pacs = !fs::exists(out_dir);
    fs::create_directories(out_dir);
    retrieved.dir = out_dir / (".sagitta-pacs-study-" + std::to_string(::getpid()));
    progress.stage("retrieving from PACS", 0.0, 0.05);
    try {
      dcm::pacs_get(peer, dcm::QueryLevel::Study, {{"StudyInstanceUID", a.text("study")}}, retrieved.dir,
                    [&progress](std::size_t done, std::size_t total) {
                      return total ? progress.update(static_cast<long long>(done), static_cast<long long>(total))
                                   : !cancel_requested();
                    });
    } catch (...) {
      std::error_code ec;
      if (created_for_pacs) fs::remove(out_dir, ec);
      if (cancel_requested()) throw Cancelled();
      throw;
    }
    input_paths = {retrieved.dir.string()};
  }
  if (input_paths.empty()) throw seg::SegmentationError("no input: give a DICOM folder or volume file, or --pacs and --study");

  progress.stage("loading model", 0.0, 0.05);
  auto t = std::chrono::steady_clock::now();
  const seg::ModelCard card = seg::load_card(card_path);
  seg::ModelOptions mo;
  mo.device = a.text("device");
  mo.threads = static_cast<int>(a.integer("threads"));
  const seg::Model model = seg::Model::load(card, mo);
  if (mo.device == "cuda" && model.device().rfind("cuda", 0) != 0)
    std::cerr << "sagitta segment: note: --device cuda requested but this LibTorch has no CUDA device; running on the CPU"
              << std::endl;
  const double t_model = seconds_since(t);

  progress.stage("loading input", 0.05, 0.15);
  if (cancel_requested()) throw Cancelled();
  t = std::chrono::steady_clock::now();
  std::vector<LoadedInput> inputs;
  for (const auto& p : input_paths) inputs.push_back(load_input(p, a));
  if (dicom_seg && !inputs.front().info)
    throw seg::SegmentationError("--dicom-seg needs a DICOM series as the first input (a SEG references source images)");
  const double t_load = seconds_since(t);
  std::vector<seg::Image::Pointer> volumes;
  for (const auto& in : inputs) volumes.push_back(in.volume);

  seg::SegmentOptions so;
  so.preprocess.crop_to_body = a.flag("crop_body");
  so.window.overlap = a.real("overlap");
  so.window.batch_size = static_cast<int>(a.integer("batch"));
  so.window.mirror = a.flag("mirror");
  so.postprocess.largest_component = a.flag("largest_component");
  so.postprocess.fill_holes = a.flag("fill_holes");
  so.postprocess.min_component_voxels = static_cast<std::size_t>(a.integer("min_size"));
  so.probabilities = a.flag("probabilities");
  progress.stage("sliding windows", 0.15, 0.95);
  so.window.progress = [&progress](int done, int total) { return progress.update(done, total); };
  // --explain: Grad-CAM maps from the same pass over the windows as the segmentation.
  std::optional<explain::Explanation> explanation;
  if (a.flag("explain")) explanation = segment_and_explain(model, volumes, so);
  seg::Segmentation result = explanation ? std::move(explanation->segmentation) : seg::segment(model, volumes, so);
  if (cancel_requested()) throw Cancelled();
  progress.stage("writing", 0.95, 1.0);

  // Everything goes to a hidden folder inside the output folder first and is renamed into place
  // only when all files are complete: a failure leaves no partial outputs.
  t = std::chrono::steady_clock::now();
  const bool created = created_for_pacs || !fs::exists(out_dir);
  fs::create_directories(out_dir);
  const fs::path staging = out_dir / (".sagitta-segment-partial-" + std::to_string(::getpid()));
  std::vector<std::string> written;
  try {
    fs::create_directories(staging);
    written.push_back("labels" + ext);
    dcm::write_volumes_as<std::uint16_t>({result.labels}, staging / written.back(), true);
    if (so.probabilities) {
      written.push_back("probabilities" + ext);
      dcm::WriteOptions wo;
      wo.pixel_type = dcm::OutputPixelType::Float;
      wo.compress = true;
      dcm::write_volumes(result.probabilities, staging / written.back(), wo);
    }
    nlohmann::json dicom_outputs = nlohmann::json::object();
    if (dicom_seg) {
      const auto segments = segment_descriptions(card, labels_present(*result.labels));
      if (segments.empty()) {
        dicom_outputs["seg"] = "not written: the model found none of its labels";
      } else {
        const auto w = dcm::write_seg(*result.labels, *inputs.front().volume, *inputs.front().info, segments,
                                      staging / "seg.dcm", seg_write_options(card, kVersion));
        written.push_back("seg.dcm");
        dicom_outputs["seg"] = {{"file", "seg.dcm"},
                                {"sop_instance_uid", w.sop_instance_uid},
                                {"series_instance_uid", w.series_instance_uid},
                                {"frames", w.frames}};
        if (from_pacs) {
          // Stored before anything appears in the output folder: a refused store leaves nothing.
          if (cancel_requested()) throw Cancelled();
          const auto stored = dcm::pacs_store(peer, {staging / "seg.dcm"});
          dicom_outputs["seg"]["stored_to"] = fmt::format("{}@{}:{}", peer.called_ae, peer.host, peer.port);
          dicom_outputs["seg"]["stored"] = stored.sent;
        }
      }
    }
    nlohmann::json input_json = nlohmann::json::array();
    nlohmann::json decisions = nlohmann::json::array();
    for (const auto& in : inputs) {
      input_json.push_back(in.description);
      for (const auto& d : in.decisions) decisions.push_back(dcm::to_json(d));
    }
    for (const auto& d : result.report["decisions"]) decisions.push_back(d);
    if (from_pacs) input_json.front()["pacs"] = {{"peer", a.text("pacs")}, {"study", a.text("study")}};
    auto timings = result.report["timings_s"];
    timings["load_model"] = t_model;
    timings["load_input"] = t_load;
    timings["write"] = seconds_since(t);
    timings["total"] = seconds_since(t0);
    nlohmann::json report = {
        {"sagitta_version", kVersion},
        {"command", "segment"},
        {"inputs", input_json},
        {"model", {{"card", fs::absolute(card_path).string()},
                   {"card_sha256", seg::sha256_file(card_path)},
                   {"name", card.name},
                   {"version", card.version},
                   {"format", card.format},
                   {"weights", card.weights.string()},
                   {"weights_sha256", card.sha256},
                   {"device", model.device()}}},
        {"outputs", written},
        {"dicom", dicom_outputs},
        {"options", {{"overlap", so.window.overlap},
                     {"batch", so.window.batch_size},
                     {"mirror", so.window.mirror},
                     {"crop_body", so.preprocess.crop_to_body},
                     {"largest_component", so.postprocess.largest_component},
                     {"fill_holes", so.postprocess.fill_holes},
                     {"min_size", so.postprocess.min_component_voxels},
                     {"threads", mo.threads}}},
        {"geometry", dcm::geometry_json(*result.labels)},
        {"model_grid", result.report["model_grid"]},
        {"windows", result.report["windows"]},
        {"decisions", decisions},
        {"timings_s", timings},
        {"labels", result.report["labels"]}};
    if (explanation) {
      add_explanation_outputs(*explanation, *volumes[0], card, staging, ext, written, report);
      report["outputs"] = written;
    }
    written.push_back("report.json");
    write_text(staging / "report.json", report.dump(2) + "\n");
    // Last chance to stop before anything becomes visible in the output folder.
    if (cancel_requested()) throw Cancelled();
    for (const auto& name : written) fs::rename(staging / name, out_dir / name);
    fs::remove_all(staging);
    progress.finish();

    if (a.flag("json")) {
      std::cout << report.dump(2) << std::endl;
    } else {
      fmt::print("wrote {} ({} windows, {:.1f} s)\n", (out_dir / written.front()).string(),
                 result.report["windows"]["count"].get<int>(), seconds_since(t0));
      for (const auto& s : result.statistics)
        if (s.value != 0) fmt::print("  {:>3} {:<24} {:>10} voxels {:>10.2f} mL\n", s.value, s.name, s.voxels, s.volume_ml);
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    if (created) fs::remove(out_dir, ec);  // only if still empty
    throw;
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> segmentation_commands() { return {{segment_spec(), run_segment}}; }

}  // namespace sagitta::cli

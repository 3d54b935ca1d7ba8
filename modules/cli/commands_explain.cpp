// `sagitta explain`: a heatmap of where a segmentation model looked for a label (Grad-CAM family
// or occlusion), in the source geometry, with overlays, a montage, faithfulness and sanity numbers
// in a JSON report. A thin wrapper over sagitta::explain.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <unistd.h>

#include "command.h"
#include "explain_outputs.h"
#include "progress.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/volume_io.h"
#include "sagitta/explain/error.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;
namespace seg = sagitta::segmentation;
namespace xp = sagitta::explain;
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out;
}

CommandSpec explain_spec() {
  CommandSpec s;
  s.name = "explain";
  s.title = "Sagitta Explain";
  s.description =
      "Explains a segmentation model's decision for a label with a heatmap in the source geometry: Grad-CAM, "
      "Grad-CAM++ or HiResCAM at the layer named by the model card (or model-agnostic occlusion sensitivity), "
      "computed per sliding window and blended with the segmentation's Gaussian weights. Writes the heatmap, "
      "overlay pictures, a montage of the most salient slices and a JSON report with a deletion curve and the "
      "model-randomisation sanity check.";
  Parameter inputs = positional("inputs", ParamType::Image, 0, "Input",
                                "A DICOM folder or a volume file (NRRD, NIfTI...) per model input channel");
  inputs.multiple = true;
  inputs.required = true;
  Parameter model = parameter("model", ParamType::File, "model", "", "Model card", "The model's card (model.json beside its weights)");
  model.required = true;
  model.channel = Channel::Input;
  Parameter label = parameter("label", ParamType::String, "label", "", "Label",
                              "Name of the label to explain, as in the model card (several: separated by commas)");
  label.required = true;
  Parameter series = parameter("series", ParamType::String, "series", "", "Series",
                               "Stack id, SeriesNumber or SeriesInstanceUID when a DICOM folder holds several");

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
  Parameter occlusion = parameter("occlusion_size", ParamType::Integer, "occlusion-size", "0", "Occluder size",
                                  "Occlusion: edge of the occluding box in voxels (0: 1/8 of the patch, at least 4)");
  occlusion.minimum = 0;
  occlusion.maximum = 512;

  Parameter out = parameter("output", ParamType::Directory, "output", "", "Output folder",
                            "Folder for the heatmap, pictures and report.json (created if needed)");
  out.flag = "o";
  out.required = true;
  out.channel = Channel::Output;
  Parameter heatmap = parameter("heatmap", ParamType::Image, "heatmap", "", "Heatmap volume",
                                "Also write the (first label's) heatmap to this file: float 0..1 in the input's geometry");
  heatmap.channel = Channel::Output;
  Parameter format = parameter("format", ParamType::StringEnumeration, "format", "nrrd", "Format", "Volume format of the outputs");
  format.enumeration = {"nrrd", "nifti"};
  Parameter colormap = choice("colormap", "colormap", {"jet", "inferno", "viridis"}, "jet", "Colour map", "Colour map of the overlays");
  Parameter opacity = parameter("opacity", ParamType::Float, "opacity", "0.5", "Opacity", "Opacity of the heatmap colours over the slice");
  opacity.minimum = 0;
  opacity.maximum = 1;
  Parameter threshold = parameter("threshold", ParamType::Float, "threshold", "0.2", "Threshold",
                                  "Heatmap values below this are not coloured");
  threshold.minimum = 0;
  threshold.maximum = 1;
  Parameter window = parameter("window", ParamType::Float, "window", "0", "Window",
                               "Grey-scale window width of the slices (0: 400 for CT models, else the 1st-99th percentiles)");
  window.minimum = 0;
  Parameter level = parameter("level", ParamType::Float, "level", "40", "Level", "Grey-scale window centre (used when --window is set)");
  Parameter slices = parameter("slices", ParamType::Integer, "slices", "6", "Montage slices", "Most salient axial slices in the montage");
  slices.minimum = 1;
  slices.maximum = 64;

  Parameter uncertainty = parameter("uncertainty", ParamType::Boolean, "uncertainty", "false", "Uncertainty",
                                    "Also write uncertainty.nrrd: predictive entropy over mirroring TTA (and MC dropout when the model has dropout)");
  Parameter mc = parameter("mc_samples", ParamType::Integer, "mc-samples", "8", "MC dropout samples",
                           "Dropout samples per window for the uncertainty (models with dropout only)");
  mc.minimum = 1;
  mc.maximum = 100;
  Parameter no_deletion = parameter("no_deletion", ParamType::Boolean, "no-deletion", "false", "Skip deletion curve",
                                    "Do not measure the deletion curve (faithfulness)");
  Parameter no_sanity = parameter("no_sanity", ParamType::Boolean, "no-sanity", "false", "Skip sanity check",
                                  "Do not run the model-randomisation sanity check (halves the run time)");

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
                               "Average the predictions (not the heatmap) over flips of every axis");
  Parameter crop = parameter("crop_body", ParamType::Boolean, "crop-body", "false", "Crop to body",
                             "Run the model only on the body's bounding box (CT: voxels above -500 HU)");
  Parameter json = parameter("json", ParamType::Boolean, "json", "false", "JSON output", "Print the report on stdout");
  json.slicer = false;
  Parameter quiet = parameter("no_progress", ParamType::Boolean, "no-progress", "false", "No progress bar",
                              "Do not draw a progress bar even on a terminal");
  quiet.slicer = false;

  s.groups.push_back({"Input", "", {inputs, model, label, series}});
  s.groups.push_back({"Method", "", {method, score, box, mask, occlusion}});
  s.groups.push_back({"Output", "", {out, heatmap, format, colormap, opacity, threshold, window, level, slices}});
  s.groups.push_back({"Checks", "", {uncertainty, mc, no_deletion, no_sanity}, true});
  s.groups.push_back({"Inference", "", {device, threads, overlap, batch, mirror, crop}, true});
  s.groups.push_back({"Reporting", "", {json, quiet}, true});
  return s;
}

struct LoadedInput {
  dcm::Image::Pointer volume;
  nlohmann::json description;
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
      throw xp::ExplainError(fmt::format("{}: stack {} has {} volumes (a time series); explain one volume at a time",
                                         path.string(), stack.id, loaded.volumes.size()));
    in.volume = loaded.volumes.front();
    in.description = {{"path", path.string()}, {"kind", "dicom"}, {"stack", dcm::to_json(stack)}};
  } else if (fs::exists(path)) {
    in.volume = dcm::read_volume(path);
    in.description = {{"path", path.string()}, {"kind", "volume"}};
  } else {
    throw xp::ExplainError(path.string() + ": no such file or folder");
  }
  in.description["geometry"] = dcm::geometry_json(*in.volume);
  return in;
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

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path);
  f << text;
  if (!f.flush()) throw xp::ExplainError(path.string() + ": cannot write");
}

int run_explain_checked(const Arguments& a) {
  const auto t0 = std::chrono::steady_clock::now();
  const fs::path card_path = a.text("model");
  const fs::path out_dir = a.text("output");
  const std::string ext = a.text("format") == "nifti" ? ".nii.gz" : ".nrrd";
  if (fs::exists(out_dir) && !fs::is_directory(out_dir)) throw xp::ExplainError(out_dir.string() + " exists and is not a folder");
  if (!a.text("box").empty() && !a.text("mask").empty()) throw xp::ExplainError("give either --box or --mask, not both");

  xp::ExplainOptions eo;
  eo.method = *xp::parse_method(a.text("method"));
  eo.score = a.text("score") == "mean" ? xp::ScoreReduction::Mean : xp::ScoreReduction::Sum;
  const std::vector<std::string> labels = split_labels(a.text("label"));
  if (!a.text("box").empty()) {
    eo.region.kind = xp::Region::Kind::Box;
    eo.region.box = parse_box(a.text("box"));
  }

  Progress progress("Sagitta Explain", "Grad-CAM explanations of a segmentation", a.flag("no_progress") || a.flag("json"));
  progress.stage("loading model", 0.0, 0.05);
  auto t = std::chrono::steady_clock::now();
  const seg::ModelCard card = seg::load_card(card_path);
  // Refuse what cannot work before loading anything big.
  xp::check_method(card, eo.method);
  for (const auto& l : labels)
    if (!card.find_label(l)) {
      std::string known;
      for (const auto& c : card.labels)
        if (c.value != 0) known += (known.empty() ? "" : ", ") + c.name;
      throw xp::ExplainError(fmt::format("unknown label '{}'; the model's labels: {}", l, known));
    }
  seg::ModelOptions mo;
  mo.device = a.text("device");
  mo.threads = static_cast<int>(a.integer("threads"));
  const seg::Model model = seg::Model::load(card, mo);
  const double t_model = seconds_since(t);

  progress.stage("loading input", 0.05, 0.1);
  if (cancel_requested()) throw Cancelled();
  t = std::chrono::steady_clock::now();
  std::vector<LoadedInput> inputs;
  for (const auto& p : a.list("inputs")) inputs.push_back(load_input(p, a));
  if (!a.text("mask").empty()) {
    eo.region.kind = xp::Region::Kind::Mask;
    eo.region.mask = dcm::read_volume(a.text("mask"));
  }
  const double t_load = seconds_since(t);
  std::vector<seg::Image::Pointer> volumes;
  for (const auto& in : inputs) volumes.push_back(in.volume);

  eo.segment.preprocess.crop_to_body = a.flag("crop_body");
  eo.segment.window.overlap = a.real("overlap");
  eo.segment.window.batch_size = static_cast<int>(a.integer("batch"));
  eo.segment.window.mirror = a.flag("mirror");
  eo.uncertainty = a.flag("uncertainty");
  eo.mc_samples = static_cast<int>(a.integer("mc_samples"));
  eo.deletion = !a.flag("no_deletion");
  eo.sanity = !a.flag("no_sanity");
  eo.occlusion_size = static_cast<int>(a.integer("occlusion_size"));
  // Stages of the run as fractions of the bar: the explaining pass, the randomised pass, deletion.
  const double explain_end = eo.sanity ? 0.55 : 0.9, sanity_end = 0.9;
  std::string current;
  eo.progress = [&](const std::string& stage, int done, int total) {
    if (stage != current) {
      current = stage;
      if (stage == "explaining") progress.stage(stage, 0.1, explain_end);
      else if (stage == "sanity check") progress.stage(stage, explain_end, sanity_end);
      else progress.stage(stage, sanity_end, 0.97);
    }
    return progress.update(done, total);
  };
  xp::Explanation result = xp::explain(model, volumes, labels, eo);
  if (cancel_requested()) throw Cancelled();
  progress.stage("writing", 0.97, 1.0);

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

  // Staged in a hidden folder and renamed into place only when every file is complete.
  t = std::chrono::steady_clock::now();
  const bool created = !fs::exists(out_dir);
  fs::create_directories(out_dir);
  const fs::path staging = out_dir / (".sagitta-explain-partial-" + std::to_string(::getpid()));
  const fs::path heatmap_path = a.text("heatmap");
  const fs::path heatmap_staged = heatmap_path.empty() ? fs::path()
                                  : heatmap_path.parent_path() / (".sagitta-explain-partial-" + std::to_string(::getpid()) + "-" +
                                                                  heatmap_path.filename().string());
  try {
    fs::create_directories(staging);
    nlohmann::json pictures;
    std::vector<std::string> written = write_explanation_files(result, *volumes[0], card, staging, ext, po,
                                                               result.labels.size() > 1, &pictures);
    if (!heatmap_path.empty()) {
      dcm::WriteOptions wo;
      wo.pixel_type = dcm::OutputPixelType::Float;
      wo.compress = true;
      dcm::write_volumes({result.labels.front().heatmap}, heatmap_staged, wo);
    }
    nlohmann::json input_json = nlohmann::json::array();
    for (const auto& in : inputs) input_json.push_back(in.description);
    nlohmann::json timings = result.report["timings_s"];
    timings["load_model"] = t_model;
    timings["load_input"] = t_load;
    timings["write"] = seconds_since(t);
    timings["total"] = seconds_since(t0);
    nlohmann::json report = {
        {"sagitta_version", kVersion},
        {"command", "explain"},
        {"inputs", input_json},
        {"model", {{"card", fs::absolute(card_path).string()},
                   {"card_sha256", seg::sha256_file(card_path)},
                   {"name", card.name},
                   {"version", card.version},
                   {"format", card.format},
                   {"weights_sha256", card.sha256},
                   {"device", model.device()}}},
        {"outputs", written},
        {"geometry", dcm::geometry_json(*volumes[0])},
        {"explanation", result.report},
        {"pictures", pictures},
        {"segmentation", result.segmentation.report["labels"]},
        {"timings_s", timings}};
    if (!heatmap_path.empty()) report["heatmap_file"] = fs::absolute(heatmap_path).string();
    written.push_back("report.json");
    write_text(staging / "report.json", report.dump(2) + "\n");
    if (cancel_requested()) throw Cancelled();
    for (const auto& name : written) fs::rename(staging / name, out_dir / name);
    if (!heatmap_path.empty()) fs::rename(heatmap_staged, heatmap_path);
    fs::remove_all(staging);
    progress.finish();
    if (a.flag("json")) {
      std::cout << report.dump(2) << std::endl;
    } else {
      fmt::print("wrote {} ({}, {} windows, {:.1f} s)\n", out_dir.string(), xp::method_name(eo.method),
                 result.report["windows"]["count"].get<int>(), seconds_since(t0));
      for (const auto& l : result.labels) {
        fmt::print("  {:<20} mass in target {:5.1f}%", l.name, 100 * l.mass_in_target);
        if (l.deletion) fmt::print("  deletion area {:.3f} (random order {:.3f})", l.deletion->area, l.deletion->random_area);
        if (l.randomisation_correlation) fmt::print("  randomised-model correlation {:.3f}", *l.randomisation_correlation);
        fmt::print("\n");
      }
    }
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);
    if (!heatmap_staged.empty()) fs::remove(heatmap_staged, ec);
    if (created) fs::remove(out_dir, ec);  // only if still empty
    throw;
  }
  return kExitOk;
}

// ExplainError is bad input or an impossible request, like SegmentationError: the same exit code
// and one line; a cancelled explanation is a cancellation.
int run_explain(const Arguments& a) {
  try {
    return run_explain_checked(a);
  } catch (const xp::ExplainError& e) {
    if (cancel_requested()) throw Cancelled();
    throw seg::SegmentationError(e.what());
  }
}

}  // namespace

std::vector<std::string> write_explanation_files(const xp::Explanation& e, const seg::Image& volume, const seg::ModelCard& card,
                                                 const fs::path& dir, const std::string& ext, PictureOptions options,
                                                 bool suffix, nlohmann::json* pictures) {
  if (options.auto_window) {
    const bool ct = !card.channels.empty() && card.channels[0].normalization.scheme == seg::Normalization::Scheme::CT;
    if (ct) {
      options.overlay.window = 400, options.overlay.level = 40;
    } else {
      const auto wl = xp::auto_window_level(volume);
      options.overlay.window = wl[0], options.overlay.level = wl[1];
    }
  }
  std::vector<std::string> written;
  dcm::WriteOptions wo;
  wo.pixel_type = dcm::OutputPixelType::Float;
  wo.compress = true;
  nlohmann::json pics = nlohmann::json::array();
  for (const auto& l : e.labels) {
    const std::string tag = suffix ? "_" + safe_name(l.name) : "";
    written.push_back("heatmap" + tag + ext);
    dcm::write_volumes({l.heatmap}, dir / written.back(), wo);
    const std::vector<int> slices = xp::salient_slices(*l.heatmap, options.slices);
    std::vector<xp::RgbImage::Pointer> tiles;
    for (int z : slices) tiles.push_back(xp::overlay_slice(volume, *l.heatmap, l.target.GetPointer(), z, options.overlay));
    // The single overlay is the most salient slice; the montage shows them all in slice order.
    const int best = xp::salient_slices(*l.heatmap, 1).front();
    written.push_back("overlay" + tag + ".png");
    xp::write_png(*xp::overlay_slice(volume, *l.heatmap, l.target.GetPointer(), best, options.overlay), dir / written.back());
    written.push_back("montage" + tag + ".png");
    xp::write_png(*xp::montage(tiles, 3), dir / written.back());
    pics.push_back({{"label", l.name},
                    {"overlay", "overlay" + tag + ".png"},
                    {"overlay_slice", best},
                    {"montage", "montage" + tag + ".png"},
                    {"montage_slices", slices}});
  }
  if (e.uncertainty) {
    written.push_back("uncertainty" + ext);
    dcm::write_volumes({e.uncertainty}, dir / written.back(), wo);
  }
  if (pictures)
    *pictures = {{"colormap", xp::colormap_name(options.overlay.map)},
                 {"opacity", options.overlay.opacity},
                 {"threshold", options.overlay.threshold},
                 {"window", options.overlay.window},
                 {"level", options.overlay.level},
                 {"slices", "axial (third index axis), x right, y down; target outlined in white"},
                 {"labels", pics}};
  return written;
}

xp::Explanation segment_and_explain(const seg::Model& model, const std::vector<seg::Image::Pointer>& inputs,
                                    const seg::SegmentOptions& options) {
  xp::ExplainOptions eo;
  eo.method = xp::Method::GradCam;
  eo.segment = options;
  // Faithfulness and sanity checks cost extra passes: `sagitta explain` runs them.
  eo.deletion = false;
  eo.sanity = false;
  eo.skip_empty = true;
  if (options.window.progress) eo.progress = [&options](const std::string&, int done, int total) { return options.window.progress(done, total); };
  try {
    xp::check_method(model.card(), eo.method);
    return xp::explain(model, inputs, {}, eo);
  } catch (const xp::ExplainError& e) {
    if (cancel_requested()) throw Cancelled();
    throw seg::SegmentationError(std::string("--explain: ") + e.what());
  }
}

void add_explanation_outputs(const xp::Explanation& e, const seg::Image& volume, const seg::ModelCard& card,
                             const fs::path& staging, const std::string& ext, std::vector<std::string>& written,
                             nlohmann::json& report) {
  nlohmann::json pictures;
  try {
    for (auto& f : write_explanation_files(e, volume, card, staging, ext, PictureOptions{}, true, &pictures)) written.push_back(f);
  } catch (const xp::ExplainError& err) {
    throw seg::SegmentationError(err.what());
  }
  report["explanation"] = e.report;
  report["pictures"] = pictures;
}

std::vector<Command> explain_commands() { return {{explain_spec(), run_explain}}; }

}  // namespace sagitta::cli

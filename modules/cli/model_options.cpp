// The parameters and steps shared by the model commands (see model_options.h).
#include "model_options.h"

#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "sagitta/core/error.h"
#include "sagitta/core/review_profile.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/segmentation/model_sources.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace seg = sagitta::segmentation;

Parameter model_inputs_parameter(bool required) {
  Parameter p = positional("inputs", ParamType::Image, 0, "Input",
                           "A DICOM folder or a volume file (NRRD, NIfTI...) per model input channel");
  p.multiple = true;
  p.required = required;
  return p;
}

Parameter model_card_parameter() {
  Parameter p = parameter("model", ParamType::File, "model", "", "Model",
                          "The model's card (model.json beside its weights), a model folder, a MONAI bundle or an "
                          "nnU-Net v2 results folder (DatasetNNN_Name/<trainer>__<plans>__<configuration>)");
  p.required = true;
  p.channel = Channel::Input;
  return p;
}

Parameter series_parameter() {
  return parameter("series", ParamType::String, "series", "", "Series",
                   "Stack id, SeriesNumber or SeriesInstanceUID when a DICOM folder holds several");
}

Parameter output_folder_parameter(const std::string& holds) {
  Parameter p = parameter("output", ParamType::Directory, "output", "", "Output folder",
                          "Folder for " + holds + " (created if needed)");
  p.flag = "o";
  p.required = true;
  p.channel = Channel::Output;
  return p;
}

Parameter volume_format_parameter() {
  Parameter p = parameter("format", ParamType::StringEnumeration, "format", "nrrd", "Format", "Volume format of the outputs");
  p.enumeration = {"nrrd", "nifti"};
  return p;
}

std::vector<Parameter> inference_parameters(const std::string& mirror_description) {
  Parameter device = parameter("device", ParamType::StringEnumeration, "device", "cpu", "Device",
                               "cuda when LibTorch has a GPU (falls back to the CPU with a note), else cpu");
  device.enumeration = {"cpu", "cuda"};
  Parameter threads = ranged(parameter("threads", ParamType::Integer, "threads", "0", "Threads", "LibTorch and decoding threads (0: all cores)"), 0, 256);
  Parameter overlap = ranged(parameter("overlap", ParamType::Float, "overlap", "0.5", "Window overlap",
                                "Fraction of a patch shared by neighbouring windows"), 0, 0.95);
  Parameter batch = ranged(parameter("batch", ParamType::Integer, "batch", "1", "Batch size", "Windows per forward pass"), 1, 64);
  Parameter mirror = switch_option("mirror", "mirror", "Mirroring TTA", mirror_description);
  Parameter crop = switch_option("crop_body", "crop-body", "Crop to body",
                             "Run the model only on the body's bounding box (CT: voxels above -500 HU)");
  return {device, threads, overlap, batch, mirror, crop};
}

Parameter json_parameter() {
  Parameter p = switch_option("json", "json", "JSON output", "Print the report on stdout");
  p.slicer = false;
  return p;
}

Parameter no_progress_parameter() {
  Parameter p = switch_option("no_progress", "no-progress", "No progress bar",
                          "Do not draw a progress bar even on a terminal");
  p.slicer = false;
  return p;
}

std::string volume_extension(const Arguments& a) { return a.text("format") == "nifti" ? ".nii.gz" : ".nrrd"; }

std::vector<Parameter> model_source_parameters() {
  Parameter folds = parameter("folds", ParamType::String, "folds", "", "nnU-Net folds",
                              "nnU-Net results folders: the folds to average (0 1 2 3 4, or all); default every "
                              "fold_N that has the checkpoint");
  folds.multiple = true;
  Parameter checkpoint = parameter("checkpoint", ParamType::StringEnumeration, "checkpoint", "final",
                                   "nnU-Net checkpoint", "nnU-Net results folders: checkpoint_final.pth or checkpoint_best.pth");
  checkpoint.enumeration = {"final", "best"};
  Parameter profile = parameter("review_profile", ParamType::File, "review-profile", "", "Review profile",
                                "The review_profile.json `sagitta calibrate` wrote for a model folder without a card "
                                "(MONAI bundle, nnU-Net results): its training profile and review thresholds are "
                                "used in place of the folder's own");
  return {folds, checkpoint, profile};
}

namespace {

// --review-profile FILE into the card: its training profile replaces the card's, its thresholds
// win over the card's.
void apply_review_profile(ModelCard& card, const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw sagitta::Error(fmt::format("--review-profile {}: cannot read it", path.string()));
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("training_profile") || !j["training_profile"].is_object())
    throw sagitta::Error(fmt::format("--review-profile {}: not a review profile (a JSON object with a training_profile, "
                                     "as `sagitta calibrate` writes)",
                                     path.string()));
  try {
    card.training_profile = training_profile_from_json(j["training_profile"]);
    if (j.contains("review_thresholds") && j["review_thresholds"].is_object()) {
      ReviewThresholds t = review_thresholds_from_json(j["review_thresholds"]);
      if (t.source.empty()) t.source = "review profile";
      card.review_thresholds = merged(card.review_thresholds, t);
    }
  } catch (const sagitta::Error& e) {
    throw sagitta::Error(fmt::format("--review-profile {}: {}", path.string(), e.what()));
  }
}

}  // namespace

ModelCard open_model(const Arguments& a) {
  seg::ModelSourceOptions options;
  for (const std::string& value : a.list("folds")) {
    std::string item;
    for (char c : value + ",") {
      if (c == ',' || c == ' ') {
        if (!item.empty()) options.folds.push_back(item);
        item.clear();
      } else {
        item += c;
      }
    }
  }
  options.checkpoint = a.text("checkpoint");
  if (options.checkpoint.empty()) options.checkpoint = "final";
  ModelCard card = seg::open_model(a.text("model"), options);
  if (!a.text("review_profile").empty()) apply_review_profile(card, a.text("review_profile"));
  return card;
}

seg::Model load_model(const ModelCard& card, const Arguments& a, const std::string& where) {
  seg::ModelOptions mo;
  mo.device = a.text("device");
  mo.threads = static_cast<int>(a.integer("threads"));
  seg::Model model = seg::Model::load(card, mo);
  if (mo.device == "cuda" && model.device().rfind("cuda", 0) != 0)
    std::cerr << where << ": note: --device cuda requested but this LibTorch has no CUDA device; running on the CPU"
              << std::endl;
  return model;
}

std::vector<dicom::OpenedVolume> open_inputs(const std::vector<std::string>& paths, const Arguments& a,
                                             const std::string& purpose) {
  dicom::OpenOptions o;
  o.series = a.text("series");
  o.threads = static_cast<int>(a.integer("threads"));
  o.purpose = purpose;
  std::vector<dicom::OpenedVolume> inputs;
  for (const auto& p : paths) inputs.push_back(dicom::open_volume(p, o));
  return inputs;
}

std::vector<Image::Pointer> volumes_of(const std::vector<dicom::OpenedVolume>& inputs) {
  std::vector<Image::Pointer> volumes;
  for (const auto& in : inputs) volumes.push_back(in.volume);
  return volumes;
}

void apply_inference_options(const Arguments& a, seg::SegmentOptions& options) {
  options.preprocess.crop_to_body = a.flag("crop_body");
  options.window.overlap = a.real("overlap");
  options.window.batch_size = static_cast<int>(a.integer("batch"));
  options.window.mirror = a.flag("mirror");
}

nlohmann::json model_json(const fs::path& card_path, const ModelCard& card, const seg::Model& model) {
  // A model folder (MONAI bundle) is identified by its inference config.
  const fs::path identity = fs::is_directory(card_path) ? card_path / "configs" / "inference.json" : card_path;
  return {{"card", fs::absolute(card_path).string()},
          {"card_sha256", fs::is_regular_file(identity) ? sha256_file(identity) : std::string()},
          {"name", card.name},
          {"version", card.version},
          {"format", card.format},
          {"weights", card.weights.string()},
          {"weights_sha256", card.sha256},
          {"device", model.device()}};
}

nlohmann::json inputs_json(const std::vector<dicom::OpenedVolume>& inputs) {
  nlohmann::json j = nlohmann::json::array();
  for (const auto& in : inputs) j.push_back(in.description);
  return j;
}

}  // namespace sagitta::cli

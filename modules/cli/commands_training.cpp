// `sagitta train`: trains, resumes or fine-tunes a native U-Net on image/label pairs and writes
// the model with its card. A thin wrapper over sagitta::segmentation::train_unet.
#include <fmt/format.h>

#include <atomic>
#include <functional>
#include <csignal>
#include <iostream>
#include <sstream>
#include <unistd.h>

#include "command.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/train.h"
#include "sagitta/segmentation/calibrate.h"
#include "sagitta/core/atomic_output.h"
#include "model_options.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace seg = sagitta::segmentation;
namespace {

std::atomic<bool> g_stop{false};
extern "C" void on_interrupt(int) { g_stop = true; }

Parameter files(const std::string& name, ParamType type, const std::string& longflag, const std::string& label,
                const std::string& description, bool required = false) {
  Parameter p = parameter(name, type, longflag, "", label, description);
  p.multiple = true;
  p.required = required;
  p.channel = Channel::Input;
  return p;
}

Parameter ranged(Parameter p, double lo, double hi) {
  p.minimum = lo;
  p.maximum = hi;
  return p;
}

Parameter with_choices(Parameter p, std::vector<std::string> values) {
  p.enumeration = std::move(values);
  return p;
}

ParameterGroup data_group() {
  Parameter output = parameter("output", ParamType::Directory, "output", "", "Output folder",
                               "Folder for model.pt, model.json, checkpoint.pt and training.json");
  output.flag = "o";
  output.required = true;
  output.channel = Channel::Output;
  return {"Data", "", {
      files("image", ParamType::Image, "image", "Training images",
            "Training volumes (NRRD, NIfTI, MHA) or DICOM folders (required unless --evaluate-only)"),
      files("label", ParamType::LabelImage, "label", "Training labels",
            "Label maps, one per --image, in the same order"),
      parameter("series", ParamType::String, "series", "", "DICOM series",
                "Stack selector for DICOM folders that hold several series"),
      files("val_image", ParamType::Image, "val-image", "Validation images",
            "Validation volumes (default: validate on the training pairs)"),
      files("val_label", ParamType::LabelImage, "val-label", "Validation labels", "Label maps for --val-image"),
      files("test_image", ParamType::Image, "test-image", "Test images",
            "Held-out volumes or DICOM folders scored with the final model (Dice in the label map's geometry)"),
      files("test_label", ParamType::LabelImage, "test-label", "Test labels", "Label maps for --test-image"),
      parameter("labels", ParamType::String, "labels", "", "Labels",
                "Classes to learn and the label values merged into each, e.g. liver=5,spleen=1,kidneys=2+3 "
                "(default: every value of the label maps)"),
      output,
      parameter("name", ParamType::String, "name", "sagitta-unet", "Model name", "Name written in the card"),
  }};
}

ParameterGroup network_group() {
  return {"Network", "", {
      ranged(parameter("dimensions", ParamType::Integer, "dimensions", "3", "Dimensions", "2 (slice by slice) or 3"), 2, 3),
      ranged(parameter("base_channels", ParamType::Integer, "base-channels", "16", "Base channels",
                       "Channels at full resolution, doubled per level"), 1, 512),
      ranged(parameter("depth", ParamType::Integer, "depth", "4", "Depth", "Resolution levels (depth-1 downsamplings)"), 1, 8),
      ranged(parameter("dropout", ParamType::Float, "dropout", "0", "Dropout", "Channel dropout in the decoder"), 0, 0.9),
      switch_option("no_deep_supervision", "no-deep-supervision", "No deep supervision",
                "Train the full-resolution output only"),
      parameter("spacing", ParamType::String, "spacing", "", "Spacing",
                "Model grid spacing in mm, x,y[,z] (default: the first image's)"),
      parameter("patch", ParamType::String, "patch", "96,96,32", "Patch size",
                "Patch size in voxels, x,y[,z], multiples of 2^(depth-1)"),
      with_choices(parameter("normalization", ParamType::StringEnumeration, "normalization", "ct", "Normalisation",
                             "ct: clip + z-score fixed from the training foreground; zscore: per volume; none"),
                   {"ct", "zscore", "none"}),
      parameter("init", ParamType::File, "init", "", "Initial model",
                "Fine-tune from this native-unet model card (architecture and normalisation kept)"),
  }};
}

ParameterGroup optimisation_group() {
  return {"Optimisation", "", {
      with_choices(parameter("optimizer", ParamType::StringEnumeration, "optimizer", "adam", "Optimiser", "adam or sgd"),
                   {"adam", "sgd"}),
      ranged(parameter("lr", ParamType::Float, "lr", "0", "Learning rate",
                       "Initial learning rate, decayed as (1 - step/steps)^0.9 (0: 1e-3 Adam, 1e-2 SGD)"), 0, 10),
      ranged(parameter("weight_decay", ParamType::Float, "weight-decay", "3e-5", "Weight decay", ""), 0, 1),
      ranged(parameter("epochs", ParamType::Integer, "epochs", "50", "Epochs", ""), 1, 100000),
      ranged(parameter("iterations", ParamType::Integer, "iterations", "50", "Iterations per epoch", ""), 1, 1000000),
      ranged(parameter("batch", ParamType::Integer, "batch", "2", "Batch size", ""), 1, 1024),
      ranged(parameter("foreground", ParamType::Float, "foreground", "0.33", "Foreground oversampling",
                       "Share of patches centred on a labelled voxel"), 0, 1),
      switch_option("no_augment", "no-augment", "No augmentation", "Plain patches"),
      parameter("flip", ParamType::String, "flip", "xyz", "Flip axes",
                "Axes mirrored at random (e.g. z, or none: laterality matters for left/right organs)"),
      ranged(parameter("rotation", ParamType::Float, "rotation", "15", "Rotation (degrees)", "Random rotation about each axis"), 0, 180),
      ranged(parameter("scale", ParamType::Float, "scale", "0.15", "Scale range", "Random scale in [1-s, 1+s]"), 0, 0.9),
      ranged(parameter("intensity", ParamType::Float, "intensity", "0.1", "Intensity jitter",
                       "Brightness, contrast and noise, in normalised units"), 0, 5),
      parameter("seed", ParamType::Integer, "seed", "1", "Seed", "Random seed (patches, augmentation, weights)"),
      ranged(parameter("threads", ParamType::Integer, "threads", "0", "Threads", "LibTorch threads (0: all cores)"), 0, 256),
      switch_option("resume", "resume", "Resume", "Continue from the output folder's checkpoint"),
      switch_option("evaluate_only", "evaluate-only", "Evaluate only",
                "Do not train: score the output folder's model on the --test pairs (recorded in its card)"),
  }};
}

CommandSpec train_spec() {
  CommandSpec s;
  s.name = "train";
  s.title = "Sagitta Train U-Net";
  s.description =
      "Trains a native U-Net (2D or 3D, instance norm + LeakyReLU) on image/label pairs: patches with "
      "foreground oversampling, Dice + cross-entropy, Adam or SGD with a poly learning rate, flips, "
      "rotation/scale and intensity augmentation. Writes model.pt + model.json (its card), a checkpoint "
      "and the per-epoch history after every epoch; Ctrl-C stops after the current iteration and "
      "--resume continues. --init fine-tunes an existing native model.";
  s.groups = {data_group(), network_group(), optimisation_group()};
  return s;
}

std::vector<seg::TrainingPair> pairs(const Arguments& a, const std::string& images, const std::string& labels) {
  const auto im = a.list(images), lb = a.list(labels);
  if (im.size() != lb.size())
    throw seg::SegmentationError(fmt::format("--{} has {} entries but --{} has {}; give one label map per image",
                                             images, im.size(), labels, lb.size()));
  std::vector<seg::TrainingPair> out;
  for (std::size_t i = 0; i < im.size(); ++i) out.push_back({im[i], lb[i], a.text("series")});
  return out;
}

template <typename T>
std::vector<T> numbers(const std::string& text, const std::string& what) {
  std::vector<T> out;
  if (text.empty()) return out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    try {
      std::size_t used = 0;
      const double v = std::stod(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument(item);
      out.push_back(T(v));
    } catch (const std::exception&) {
      throw seg::SegmentationError(fmt::format("--{}: '{}' is not a positive number", what, item));
    }
  }
  return out;
}

std::string dice_text(const std::vector<seg::LabelDice>& dice) {
  std::string s;
  for (const auto& d : dice)
    s += fmt::format(" {} {}", d.name, d.dice ? fmt::format("{:.3f}", *d.dice) : std::string("-"));
  return s;
}

// The effective command line (every parameter with its value), recorded in the card; paths
// relative to the card's folder (--output), as every path of a card is.
std::string command_line(const Arguments& a) {
  std::string cmd = "sagitta train";
  const auto is_path = [](ParamType t) {
    return t == ParamType::File || t == ParamType::Directory || t == ParamType::Image || t == ParamType::LabelImage;
  };
  for (const auto& g : train_spec().groups)
    for (const auto& p : g.parameters) {
      if (p.type == ParamType::Boolean) {
        if (a.flag(p.name)) cmd += " --" + p.longflag;
        continue;
      }
      const auto values = a.list(p.name);
      if (values.empty() || (values.size() == 1 && values[0].empty())) continue;
      cmd += " --" + p.longflag;
      for (const auto& v : values) cmd += " " + (is_path(p.type) ? seg::provenance_path(v, a.text("output")) : v);
    }
  return cmd;
}

// Options that are a parameter's value as it is, by the parameter's name.
template <typename T>
using Field = std::pair<const char*, T seg::TrainOptions::*>;

void read_plain_fields(const Arguments& a, seg::TrainOptions& o) {
  using O = seg::TrainOptions;
  static const Field<int> integers[] = {{"dimensions", &O::dimensions}, {"base_channels", &O::base_channels},
                                        {"depth", &O::depth}, {"epochs", &O::epochs},
                                        {"iterations", &O::iterations_per_epoch}, {"batch", &O::batch_size},
                                        {"threads", &O::threads}};
  static const Field<double> reals[] = {{"dropout", &O::dropout}, {"lr", &O::learning_rate},
                                        {"weight_decay", &O::weight_decay}, {"foreground", &O::foreground_fraction},
                                        {"rotation", &O::rotation_degrees}, {"scale", &O::scale_range},
                                        {"intensity", &O::intensity_range}};
  static const Field<std::string> texts[] = {{"name", &O::name}, {"normalization", &O::normalization},
                                             {"optimizer", &O::optimizer}};
  for (const auto& [name, member] : integers) o.*member = int(a.integer(name));
  for (const auto& [name, member] : reals) o.*member = a.real(name);
  for (const auto& [name, member] : texts) o.*member = a.text(name);
}

seg::TrainOptions train_options(const Arguments& a) {
  seg::TrainOptions o;
  o.command = command_line(a);
  o.training = pairs(a, "image", "label");
  o.validation = pairs(a, "val_image", "val_label");
  o.test = pairs(a, "test_image", "test_label");
  if (!a.text("labels").empty()) o.labels = seg::parse_label_specs(a.text("labels"));
  read_plain_fields(a, o);
  o.output = a.text("output");
  o.init = a.text("init");
  o.deep_supervision = !a.flag("no_deep_supervision");
  o.augment = !a.flag("no_augment");
  o.resume = a.flag("resume");
  o.seed = unsigned(a.integer("seed"));
  o.flip_axes = a.text("flip") == "none" ? "" : a.text("flip");
  o.spacing = numbers<double>(a.text("spacing"), "spacing");
  o.patch_size = numbers<int>(a.text("patch"), "patch");
  if (!a.has("patch") || a.text("patch") == "96,96,32") {
    if (o.dimensions == 2) o.patch_size = {128, 128};
  }
  return o;
}

void print_test_dice(const std::vector<seg::TrainingPair>& tests, const std::vector<std::vector<seg::LabelDice>>& dice) {
  for (std::size_t i = 0; i < dice.size(); ++i)
    fmt::print("test {}: Dice{}\n", tests[i].image.string(), dice_text(dice[i]));
}

// Per epoch a line; on a terminal also a progress bar over the epoch's iterations.
std::function<void(const seg::TrainProgress&)> progress_printer() {
  const bool tty = ::isatty(STDOUT_FILENO);
  return [tty](const seg::TrainProgress& p) {
    if (p.finished) {
      const auto& e = *p.finished;
      if (tty) fmt::print("\r\033[K");
      fmt::print("epoch {}/{}  loss {:.4f}  lr {:.2e}  Dice{}  ({:.1f} s)\n", e.epoch, p.epochs, e.loss, e.learning_rate,
                 dice_text(e.dice), e.seconds);
      std::fflush(stdout);
      return;
    }
    if (!tty) return;
    const int width = 30, done = p.iteration * width / std::max(1, p.iterations);
    fmt::print("\r\033[Kepoch {}/{} [{}{}] {}/{}  loss {:.4f}", p.epoch, p.epochs, std::string(std::size_t(done), '#'),
               std::string(std::size_t(width - done), '.'), p.iteration, p.iterations, p.loss);
    std::fflush(stdout);
  };
}

// train_unet with Ctrl-C asking it to stop after the current iteration.
seg::TrainResult train_interruptibly(const seg::TrainOptions& o) {
  g_stop = false;
  auto previous = std::signal(SIGINT, on_interrupt);
  seg::TrainResult result;
  try {
    result = seg::train_unet(o, progress_printer(), &g_stop);
  } catch (...) {
    std::signal(SIGINT, previous);
    throw;
  }
  std::signal(SIGINT, previous);
  return result;
}

int run_train(const Arguments& a) {
  const seg::TrainOptions o = train_options(a);
  if (a.flag("evaluate_only")) {
    if (o.test.empty()) throw seg::SegmentationError("--evaluate-only needs --test-image and --test-label");
    print_test_dice(o.test, seg::evaluate_into_card(o.output / "model.json", o.test, o.labels, o.threads));
    return kExitOk;
  }
  const seg::TrainResult result = train_interruptibly(o);
  if (result.stopped) {
    const int last = result.history.empty() ? 0 : result.history.back().epoch;
    fmt::print("\nstopped; the model of epoch {} is in {} — continue with the same command and --resume\n", last,
               o.output.string());
    return kExitOk;
  }
  print_test_dice(o.test, result.test);
  fmt::print("model: {} ({:.1f} s)\n", result.card.string(), result.seconds);
  return kExitOk;
}

// ---- calibrate -------------------------------------------------------------------------------

CommandSpec calibrate_spec() {
  CommandSpec s = command_spec("calibrate", "Sagitta Calibrate",
      "Measures a model's review profile on labelled cases: runs the model on each image as `sagitta segment` "
      "does, scores every structure against its label map (Dice), records the training profile (spacing, field "
      "of view, intensities inside the labelled structures) and learns the review thresholds (mean probability, "
      "border entropy) that best separate structures with Dice < 0.8; reports the precision and recall of "
      "needs_review before and after. Writes model.json (the card with the profile and thresholds, pointing at "
      "the same weights) and calibration.json.");
  Parameter output = output_folder_parameter("the calibrated model.json and calibration.json");
  output.required = true;
  std::vector<Parameter> input{model_card_parameter()};
  for (const auto& p : model_source_parameters()) input.push_back(p);
  input.push_back(files("image", ParamType::Image, "image", "Images", "Labelled volumes (NRRD, NIfTI, MHA) or DICOM folders", true));
  input.push_back(files("label", ParamType::LabelImage, "label", "Label maps", "Reference label maps, one per --image", true));
  input.push_back(parameter("series", ParamType::String, "series", "", "DICOM series",
                            "Stack selector for DICOM folders that hold several series"));
  input.push_back(parameter("labels", ParamType::String, "labels", "", "Labels",
                            "How reference values map to the model's labels, as `sagitta train --labels` (liver=5,"
                            "kidneys=2+3); default: the card's training mapping, else the values as they are"));
  s.groups.push_back({"Input", "", input});
  s.groups.push_back({"Output", "", {output}});
  std::vector<Parameter> inference = inference_parameters("Average the predictions over flips of every axis");
  s.groups.push_back({"Inference", "", inference, true});
  return s;
}

int run_calibrate(const Arguments& a) {
  const ModelCard card = open_model(a);
  // A card gets a calibrated copy pointing at the same weights; a model folder (MONAI bundle,
  // nnU-Net results) has no card to copy, so its profile and thresholds go to a review_profile.json
  // that segment, explain and cohort runs take with --review-profile.
  const bool folder = card.path.extension() != ".json";
  const seg::Model model = load_model(card, a, "sagitta calibrate");
  std::vector<seg::LabelSpec> labels;
  if (!a.text("labels").empty()) labels = seg::parse_label_specs(a.text("labels"));
  const seg::CalibrationResult r = seg::calibrate(model, pairs(a, "image", "label"), labels);
  // Written in place, each file atomically (the card's weights path is relative to its folder, so
  // it is written where it stays), the report first: a card appears only with its report.
  const fs::path out = a.text("output");
  fs::create_directories(out);
  write_text_atomically(out / "calibration.json", r.report.dump(2) + "\n");
  const fs::path written = out / (folder ? "review_profile.json" : "model.json");
  if (folder) {
    nlohmann::json thresholds = to_json(r.card.review_thresholds);
    write_text_atomically(written, nlohmann::json{{"model", card.name},
                                                  {"model_path", a.text("model")},
                                                  {"training_profile", to_json(*r.card.training_profile)},
                                                  {"review_thresholds", thresholds}}
                                           .dump(2) +
                                       "\n");
  } else {
    save_card(r.card, written);
  }
  auto pct = [](const nlohmann::json& v) { return v.is_number() ? fmt::format("{:.0f}%", 100 * v.get<double>()) : std::string("–"); };
  fmt::print("{} structures in {} case(s), {} with Dice < {}\n", r.report["structures"].get<std::size_t>(),
             r.report["cases"].size(), r.report["bad_structures"].get<int>(), seg::kBadDice);
  for (const char* what : {"confidence_flags", "needs_review"})
    for (const char* when : {"before", "after"}) {
      const auto& s = r.report[when][what];
      fmt::print("  {:<16} {:<6}: precision {:>4}, recall {:>4} ({} flagged)\n", what, when, pct(s["precision"]),
                 pct(s["recall"]), s["flagged"].get<int>());
    }
  fmt::print("  min_mean_probability {:.3f}, max_border_entropy {:.3f}\n",
             r.report["thresholds"]["min_mean_probability"].get<double>(),
             r.report["thresholds"]["max_border_entropy"].get<double>());
  for (const auto& n : r.report["notes"]) fmt::print("  note: {}\n", n.get<std::string>());
  fmt::print("wrote {}{}\n", written.string(), folder ? " (give it to segment with --review-profile)" : "");
  return kExitOk;
}

}  // namespace

std::vector<Command> training_commands() { return {{train_spec(), run_train}, {calibrate_spec(), run_calibrate}}; }

}  // namespace sagitta::cli

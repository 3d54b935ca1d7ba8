// Training the native U-Net: options and resumed state resolved into a setup (architecture, grid,
// labels, normalisation, cases), then Adam or SGD with a poly learning rate over patches from
// train_cases.cpp, Dice + cross-entropy with deep supervision (losses.cpp), validation Dice per
// label, and after every epoch the model with its card, a checkpoint and training.json, so a run
// can be resumed or a model fine-tuned.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <memory>
#include <optional>
#include <random>

#include "losses.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/train.h"
#include "unet.h"
#include "model_impl.h"
#include "train_cases.h"
#include "train_data.h"
#include "train_records.h"
#include "sagitta/core/atomic_output.h"

namespace sagitta::segmentation {
namespace fs = std::filesystem;
using json = nlohmann::json;
using detail::Case;
using detail::CaseData;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Paths {
  fs::path checkpoint, state, card, weights;
  explicit Paths(const fs::path& output)
      : checkpoint(output / "checkpoint.pt"), state(output / "training.json"), card(output / "model.json"),
        weights(output / "model.pt") {}
};

// ---- setup: options, resumed state and initial model resolved --------------------------------

void check_options(const TrainOptions& o) {
  if (o.training.empty()) throw SegmentationError("training needs at least one image/label pair");
  if (o.output.empty()) throw SegmentationError("training needs an output folder");
  if (o.epochs < 1 || o.iterations_per_epoch < 1 || o.batch_size < 1)
    throw SegmentationError("epochs, iterations per epoch and batch size must be at least 1");
  if (o.optimizer != "adam" && o.optimizer != "sgd")
    throw SegmentationError("optimizer must be adam or sgd, got '" + o.optimizer + "'");
}

// training.json of the run to resume (null when not resuming).
json read_state(const TrainOptions& o, const Paths& paths) {
  json state;
  if (!o.resume) return state;
  if (!fs::exists(paths.state) || !fs::exists(paths.checkpoint))
    throw SegmentationError("cannot resume: " + o.output.string() + " has no checkpoint.pt and training.json");
  std::ifstream f(paths.state);
  try {
    state = json::parse(f);
  } catch (const json::exception& e) {
    throw SegmentationError(paths.state.string() + ": " + e.what());
  }
  return state;
}

std::optional<ModelCard> read_init_card(const TrainOptions& o) {
  if (o.init.empty()) return std::nullopt;
  ModelCard card = load_card(o.init);
  if (card.format != "native-unet")
    throw SegmentationError(o.init.string() + ": fine-tuning needs a native-unet model, this card is '" + card.format +
                            "'");
  return card;
}

// Everything decided before the first epoch. Architecture, labels, normalisation and grid come
// from the resumed state, the initial model (fine-tuning) or the options, in that order.
struct Setup {
  json state;                          // resumed training.json, or null
  std::optional<ModelCard> init_card;  // fine-tuning
  UNetOptions net;                     // num_classes from the labels
  std::vector<double> spacing;         // mm per model axis
  std::vector<int> patch;              // voxels per model axis
  std::vector<LabelSpec> labels;
  Normalization norm;
  float pad = 0;                       // normalised value outside the images
  std::vector<Case> train_cases, val_cases;
  TrainingProfile profile;             // what the training cases were, for the card's review checks
};

// The training cases as the card's training profile: the images' own spacing and field of view,
// and the raw intensities inside the trained labels (on the training grid). The modality is CT
// when the CT normalisation was chosen, else not stated.
TrainingProfile training_profile(const std::vector<CaseData>& train, const Normalization& norm) {
  TrainingProfile p;
  p.source = "sagitta train";
  p.cases = int(train.size());
  if (norm.scheme == Normalization::Scheme::CT) p.modality = "CT";
  std::array<double, 3> smin, smax, emin, emax;
  smin.fill(1e300), emin.fill(1e300), smax.fill(0), emax.fill(0);
  std::vector<float> foreground;
  for (const auto& c : train) {
    for (std::size_t a = 0; a < 3; ++a) {
      smin[a] = std::min(smin[a], c.source_spacing[a]), smax[a] = std::max(smax[a], c.source_spacing[a]);
      emin[a] = std::min(emin[a], c.source_extent[a]), emax[a] = std::max(emax[a], c.source_extent[a]);
    }
    for (std::size_t i = 0; i < c.labels.size(); ++i)
      if (c.labels[i] != 0) foreground.push_back(c.image[i]);
  }
  if (train.empty()) return p;
  p.spacing_min = smin, p.spacing_max = smax, p.extent_min = emin, p.extent_max = emax;
  p.foreground.push_back(summarize(foreground));
  return p;
}

UNetOptions network_options(const TrainOptions& o, const Setup& s) {
  UNetOptions net;
  if (o.resume) {
    net = UNetOptions::from_json(s.state.at("unet"));
  } else if (s.init_card) {
    net = UNetOptions::from_json(s.init_card->unet);
    net.deep_supervision = o.deep_supervision;
    net.dropout = o.dropout;
  } else {
    net.dimensions = o.dimensions;
    net.base_channels = o.base_channels;
    net.depth = o.depth;
    net.dropout = o.dropout;
    net.deep_supervision = o.deep_supervision;
  }
  return net;
}

void choose_patch(const TrainOptions& o, Setup& s) {
  const int dims = s.net.dimensions;
  s.patch = o.resume ? s.state.at("patch_size").get<std::vector<int>>() : o.patch_size;
  if (int(s.patch.size()) != dims)
    throw SegmentationError(fmt::format("patch size has {} values, the {}D model needs {}", s.patch.size(), dims, dims));
  const int divisor = 1 << (s.net.depth - 1);
  for (int p : s.patch)
    if (p < divisor || p % divisor)
      throw SegmentationError(fmt::format("patch size {} is not a positive multiple of {} (2^(depth-1))", p, divisor));
}

// The grid's spacing (x y z): given, or the first training image's; s.spacing keeps the model's axes.
std::array<double, 3> choose_spacing(const TrainOptions& o, Setup& s) {
  const int dims = s.net.dimensions;
  s.spacing = o.spacing;
  if (o.resume) s.spacing = s.state.at("spacing").get<std::vector<double>>();
  else if (s.spacing.empty() && s.init_card) s.spacing = s.init_card->spacing;
  std::array<double, 3> grid{};
  const auto first = detail::read_image(o.training.front().image, o.training.front().series);
  for (int a = 0; a < 3; ++a) grid[a] = first->GetSpacing()[a];
  if (!s.spacing.empty()) {
    if (int(s.spacing.size()) != dims)
      throw SegmentationError(fmt::format("spacing has {} values, the {}D model needs {}", s.spacing.size(), dims, dims));
    for (int a = 0; a < dims; ++a) grid[a] = s.spacing[std::size_t(a)];
  }
  s.spacing.assign(grid.begin(), grid.begin() + dims);
  return grid;
}

// Labels given, else resumed, else the values found in the training maps.
void choose_labels(const TrainOptions& o, const std::vector<CaseData>& train, Setup& s) {
  s.labels = o.labels;
  if (s.labels.empty()) {
    if (o.resume) {
      for (const auto& l : s.state.at("labels")) s.labels.push_back(detail::label_from_json(l));
    } else {
      int max_value = 0;
      for (const auto& c : train) max_value = std::max<int>(max_value, *std::max_element(c.labels.begin(), c.labels.end()));
      s.labels = detail::identity_labels(max_value);
    }
  }
  s.net.num_classes = 0;
  for (const auto& l : s.labels) s.net.num_classes = std::max(s.net.num_classes, l.value + 1);
}

Normalization choose_normalization(const TrainOptions& o, const Setup& s, const std::vector<CaseData>& train) {
  Normalization norm;
  if (o.resume) {
    norm = detail::normalization_from_json(s.state.at("normalization"));
  } else if (s.init_card && !s.init_card->channels.empty()) {
    norm = s.init_card->channels.front().normalization;  // the pretrained network's inputs
  } else if (o.normalization == "ct") {
    norm = detail::ct_normalization(train);
  } else if (o.normalization == "zscore") {
    norm.scheme = Normalization::Scheme::ZScore;
  } else if (o.normalization == "none") {
    norm.scheme = Normalization::Scheme::None;
  } else {
    throw SegmentationError("normalization must be ct, zscore or none, got '" + o.normalization + "'");
  }
  return norm;
}

std::vector<Case> make_cases(std::vector<CaseData>&& data, const Setup& s) {
  std::vector<Case> cases;
  for (auto& c : data) cases.push_back(detail::make_case(std::move(c), s.norm, s.pad, s.net.num_classes));
  data.clear();
  return cases;
}

Setup prepare(const TrainOptions& o, const Paths& paths) {
  Setup s;
  s.state = read_state(o, paths);
  s.init_card = read_init_card(o);
  s.net = network_options(o, s);
  choose_patch(o, s);
  const auto grid_spacing = choose_spacing(o, s);
  std::vector<CaseData> train, val;
  for (const auto& p : o.training) train.push_back(detail::load_case(p, grid_spacing, o.labels));
  choose_labels(o, train, s);
  for (const auto& p : o.validation) val.push_back(detail::load_case(p, grid_spacing, s.labels));
  s.norm = choose_normalization(o, s, train);
  s.pad = detail::pad_value(s.norm);
  s.profile = training_profile(train, s.norm);
  s.train_cases = make_cases(std::move(train), s);
  s.val_cases = make_cases(std::move(val), s);
  return s;
}

// ---- the training run ------------------------------------------------------------------------

UNet seeded_unet(const UNetOptions& options, unsigned seed) {
  torch::manual_seed(seed);
  return UNet(options);
}

using Progress = std::function<void(const TrainProgress&)>;

class Trainer {
 public:
  Trainer(const TrainOptions& o, const Paths& paths, Setup&& s);
  TrainResult run(const Progress& progress, const std::atomic<bool>* stop);
  const std::vector<LabelSpec>& labels() const { return s_.labels; }

 private:
  struct EpochRun {
    double loss_sum = 0, lr = 0;
    bool stopped = false;
  };
  void make_optimizer();
  void set_learning_rate(double lr);
  void resume();
  EpochRun train_epoch(int epoch, const Progress& progress, const std::atomic<bool>* stop);
  std::pair<torch::Tensor, torch::Tensor> batch(std::mt19937& rng) const;
  double step(const torch::Tensor& x, const torch::Tensor& y);
  EpochStats validate(int epoch, const EpochRun& run, Clock::time_point start);
  ModelCard card(int epoch) const;
  json provenance(int epoch) const;
  json state(int epoch) const;
  void save_checkpoint(const fs::path& path) const;
  void write_outputs(int epoch);

  const TrainOptions& o_;
  const Paths& paths_;
  Setup s_;
  // Without validation pairs, the training pairs are validated (then the Dice is a training Dice).
  const std::vector<Case>& validate_on_;
  UNet net_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  double lr0_ = 0;
  std::vector<std::string> notes_;
  detail::Sampler sampler_;
  TrainResult result_;
};

Trainer::Trainer(const TrainOptions& o, const Paths& paths, Setup&& s)
    : o_(o), paths_(paths), s_(std::move(s)), validate_on_(s_.val_cases.empty() ? s_.train_cases : s_.val_cases),
      net_(seeded_unet(s_.net, o.seed)),
      sampler_(o, s_.net.dimensions, {s_.patch[0], s_.patch[1], s_.net.dimensions == 3 ? s_.patch[2] : 1}, s_.pad) {
  if (s_.init_card && !o_.resume) {
    const auto skipped = load_unet_weights(net_, s_.init_card->weights.string(), /*strict=*/false);
    notes_.push_back(fmt::format("fine-tuning from {} ({} tensors re-initialised: {})", o_.init.string(),
                                 skipped.size(), skipped.empty() ? "none" : fmt::format("{}", fmt::join(skipped, ", "))));
  }
  net_->train();
  make_optimizer();
  result_.card = paths_.card;
  if (o_.resume) resume();
}

void Trainer::make_optimizer() {
  lr0_ = o_.learning_rate > 0 ? o_.learning_rate : (o_.optimizer == "adam" ? 1e-3 : 1e-2);
  if (o_.optimizer == "adam")
    optimizer_ = std::make_unique<torch::optim::Adam>(net_->parameters(),
                                                      torch::optim::AdamOptions(lr0_).weight_decay(o_.weight_decay));
  else
    optimizer_ = std::make_unique<torch::optim::SGD>(
        net_->parameters(), torch::optim::SGDOptions(lr0_).momentum(0.99).nesterov(true).weight_decay(o_.weight_decay));
}

void Trainer::set_learning_rate(double lr) {
  for (auto& g : optimizer_->param_groups()) {
    if (o_.optimizer == "adam") static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
    else static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
  }
}

void Trainer::resume() {
  torch::serialize::InputArchive archive, model_archive, optim_archive;
  archive.load_from(paths_.checkpoint.string());
  archive.read("model", model_archive);
  archive.read("optimizer", optim_archive);
  net_->load(model_archive);
  optimizer_->load(optim_archive);
  for (const auto& e : s_.state.at("history")) result_.history.push_back(detail::epoch_from_json(e));
  result_.first_epoch = s_.state.at("epoch").get<int>() + 1;
  notes_ = s_.state.value("notes", std::vector<std::string>{});
  notes_.push_back(fmt::format("resumed after epoch {}", result_.first_epoch - 1));
}

// At least one foreground-centred patch per batch when oversampling is on: small organs would
// otherwise be seen too rarely to learn.
std::pair<torch::Tensor, torch::Tensor> Trainer::batch(std::mt19937& rng) const {
  std::uniform_real_distribution<double> unit(0, 1);
  const auto& cases = s_.train_cases;
  std::vector<torch::Tensor> images, targets;
  bool any_fg = false;
  for (int b = 0; b < o_.batch_size; ++b) {
    const Case& c = cases[std::uniform_int_distribution<std::size_t>(0, cases.size() - 1)(rng)];
    bool fg = unit(rng) < o_.foreground_fraction;
    if (!fg && !any_fg && b == o_.batch_size - 1 && o_.foreground_fraction > 0) fg = true;
    any_fg = any_fg || fg;
    auto [x, y] = sampler_.sample(c, rng, fg);
    images.push_back(x);
    targets.push_back(y);
  }
  return {torch::stack(images), torch::stack(targets)};
}

// One optimiser step; the batch's loss.
double Trainer::step(const torch::Tensor& x, const torch::Tensor& y) {
  optimizer_->zero_grad();
  auto loss = detail::deep_supervision_loss(net_->forward_all(x), y);
  loss.backward();
  // Clipping keeps the first iterations (random weights, large Dice gradients) stable.
  torch::nn::utils::clip_grad_norm_(net_->parameters(), 12.0);
  optimizer_->step();
  return loss.item<double>();
}

Trainer::EpochRun Trainer::train_epoch(int epoch, const Progress& progress, const std::atomic<bool>* stop) {
  // Seeded per epoch, so a resumed run draws the same patches as an uninterrupted one.
  std::mt19937 rng(o_.seed * 1000003u + unsigned(epoch));
  torch::manual_seed(o_.seed * 7919u + unsigned(epoch));
  const long total_steps = long(o_.epochs) * o_.iterations_per_epoch;
  EpochRun run;
  run.lr = lr0_;
  for (int it = 0; it < o_.iterations_per_epoch; ++it) {
    if (stop && stop->load()) {
      run.stopped = true;
      break;
    }
    const long step_index = long(epoch - 1) * o_.iterations_per_epoch + it;
    run.lr = lr0_ * std::pow(1.0 - double(step_index) / double(total_steps), 0.9);
    set_learning_rate(run.lr);
    const auto [x, y] = batch(rng);
    run.loss_sum += step(x, y);
    if (progress) {
      TrainProgress p;
      p.epoch = epoch;
      p.epochs = o_.epochs;
      p.iteration = it + 1;
      p.iterations = o_.iterations_per_epoch;
      p.loss = run.loss_sum / (it + 1);
      progress(p);
    }
  }
  return run;
}

EpochStats Trainer::validate(int epoch, const EpochRun& run, Clock::time_point start) {
  EpochStats stats;
  stats.epoch = epoch;
  stats.loss = run.loss_sum / o_.iterations_per_epoch;
  stats.learning_rate = run.lr;
  std::vector<std::vector<LabelDice>> per_case;
  for (const auto& c : validate_on_) {
    const auto pred = detail::predict(net_, c.image, s_.pad, c.size);
    per_case.push_back(detail::dice_per_label(pred.data(), c.raw_labels.data(), pred.size(), s_.labels));
  }
  stats.dice = detail::mean_dice(per_case);
  stats.mean_dice = detail::mean_of(stats.dice);
  stats.seconds = since(start);
  return stats;
}

ModelCard Trainer::card(int epoch) const {
  ModelCard card;
  card.name = o_.name;
  card.version = fmt::format("epoch-{}", epoch);
  card.description = o_.description.empty()
                         ? fmt::format("Native U-Net trained by sagitta train ({} labels)", s_.labels.size())
                         : o_.description;
  card.format = "native-unet";
  card.weights = fs::absolute(paths_.weights);
  card.dimensions = s_.net.dimensions;
  card.channels = {InputChannel{s_.norm.scheme == Normalization::Scheme::CT ? "CT" : "image", s_.norm}};
  card.spacing = s_.spacing;
  card.patch_size = s_.patch;
  card.labels.push_back(Label{0, "background", {0, 0, 0}, std::nullopt, std::nullopt});
  for (const auto& l : s_.labels) card.labels.push_back(Label{l.value, l.name, l.color, std::nullopt, std::nullopt});
  card.gradcam_layer = fmt::format("decoder.{}", s_.net.depth - 2);
  if (s_.net.depth < 2) card.gradcam_layer = "bottleneck";
  card.returns_activation = false;
  UNetOptions saved = s_.net;
  saved.deep_supervision = false;  // inference never needs the extra heads
  card.unet = saved.to_json();
  card.provenance = provenance(epoch);
  if (s_.profile.cases > 0) card.training_profile = s_.profile;
  return card;
}

json Trainer::provenance(int epoch) const {
  json pairs = json::array();
  for (const auto& p : o_.training)
    pairs.push_back({{"image", provenance_path(p.image, o_.output)},
                     {"label", provenance_path(p.label, o_.output)}});
  const auto& history = result_.history;
  return {{"tool", "sagitta train"}, {"command", o_.command}, {"paths", "relative to this card's folder"}, {"epochs", epoch},
          {"training_pairs", pairs}, {"labels", detail::labels_json(s_.labels)}, {"optimizer", o_.optimizer},
          {"learning_rate", lr0_}, {"patch_size", s_.patch}, {"grid", "axis-aligned (identity direction, LPS)"},
          {"pad_value", s_.pad}, {"validation", s_.val_cases.empty() ? "training pairs" : "validation pairs"},
          {"final_validation_dice", history.empty() ? json(nullptr) : detail::dice_json(history.back().dice)},
          {"notes", notes_}};
}

json Trainer::state(int epoch) const {
  json history = json::array();
  for (const auto& e : result_.history) history.push_back(detail::epoch_json(e));
  return {{"epoch", epoch}, {"epochs", o_.epochs}, {"unet", s_.net.to_json()},
          {"spacing", s_.spacing}, {"patch_size", s_.patch}, {"labels", detail::labels_json(s_.labels)},
          {"normalization", detail::normalization_json(s_.norm)}, {"history", history}, {"notes", notes_},
          {"seed", o_.seed}};
}

void Trainer::save_checkpoint(const fs::path& path) const {
  torch::serialize::OutputArchive archive, model_archive, optim_archive;
  net_->save(model_archive);
  optimizer_->save(optim_archive);
  archive.write("model", model_archive);
  archive.write("optimizer", optim_archive);
  archive.save_to(path.string());
}

// Weights + card first, then the checkpoint, then the state that points at both: a stop at any
// moment leaves the previous epoch's consistent set or the new one.
void Trainer::write_outputs(int epoch) {
  fs::create_directories(o_.output);  // only now: bad options or data leave nothing behind
  sagitta::write_atomically(paths_.weights, [&](const fs::path& tmp) { save_unet(net_, tmp.string()); });
  save_card(card(epoch), paths_.card);
  sagitta::write_atomically(paths_.checkpoint, [&](const fs::path& tmp) { save_checkpoint(tmp); });
  detail::write_json(paths_.state, state(epoch));
}

TrainResult Trainer::run(const Progress& progress, const std::atomic<bool>* stop) {
  for (int epoch = result_.first_epoch; epoch <= o_.epochs; ++epoch) {
    const auto t_epoch = Clock::now();
    const EpochRun run = train_epoch(epoch, progress, stop);
    if (run.stopped) {
      result_.stopped = true;
      break;
    }
    result_.history.push_back(validate(epoch, run, t_epoch));
    write_outputs(epoch);
    if (progress) {
      TrainProgress p;
      p.epoch = epoch;
      p.epochs = o_.epochs;
      p.iteration = p.iterations = o_.iterations_per_epoch;
      p.loss = result_.history.back().loss;
      p.finished = &result_.history.back();
      progress(p);
    }
  }
  return result_;
}

}  // namespace

TrainResult train_unet(const TrainOptions& o, const Progress& progress, const std::atomic<bool>* stop) {
  const auto t_start = Clock::now();
  check_options(o);
  set_threads(o.threads);
  const Paths paths(o.output);
  Trainer trainer(o, paths, prepare(o, paths));
  TrainResult result = trainer.run(progress, stop);
  if (!result.stopped && !o.test.empty()) result.test = evaluate_into_card(paths.card, o.test, trainer.labels(), o.threads);
  result.seconds = since(t_start);
  return result;
}

}  // namespace sagitta::segmentation

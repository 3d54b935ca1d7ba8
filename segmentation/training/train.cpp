// Training the native U-Net: patch sampling with foreground oversampling, spatial and intensity
// augmentation done by one grid_sample per patch, Dice + cross-entropy (with deep supervision),
// Adam or SGD with a poly learning rate, validation Dice per label, checkpoints with their card,
// resume and fine-tuning.
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "sagitta/dicom/error.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/sliding_window.h"
#include "sagitta/segmentation/train.h"
#include "unet.h"
#include "train_data.h"

namespace sagitta::segmentation {
namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using json = nlohmann::json;
using detail::CaseData;

// ---- labels ----------------------------------------------------------------------------------

std::vector<LabelSpec> parse_label_specs(const std::string& text) {
  // A distinct, readable colour per label (liver red, spleen purple... in order of appearance).
  static const std::array<std::array<int, 3>, 8> palette{{{221, 84, 60}, {157, 108, 162}, {241, 214, 145},
                                                          {111, 184, 210}, {128, 174, 128}, {230, 220, 70},
                                                          {250, 150, 50}, {90, 90, 220}}};
  std::vector<LabelSpec> specs;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw SegmentationError("labels: expected name=value[+value...], got '" + item + "'");
    LabelSpec s;
    s.value = int(specs.size()) + 1;
    s.name = item.substr(0, eq);
    s.color = palette[specs.size() % palette.size()];
    std::stringstream vs(item.substr(eq + 1));
    for (std::string v; std::getline(vs, v, '+');) {
      try {
        std::size_t used = 0;
        s.sources.push_back(std::stoi(v, &used));
        if (used != v.size()) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        throw SegmentationError("labels: '" + v + "' in '" + item + "' is not an integer label value");
      }
    }
    specs.push_back(s);
  }
  if (specs.empty()) throw SegmentationError("labels: no label given");
  if (specs.size() > 254) throw SegmentationError("labels: at most 254 labels");
  return specs;
}

namespace {

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void write_atomically(const fs::path& path, const std::function<void(const fs::path&)>& write) {
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".partial-" + std::to_string(::getpid()));
  try {
    write(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, path);
}

void write_json(const fs::path& path, const json& j) {
  write_atomically(path, [&](const fs::path& tmp) {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f.flush()) throw SegmentationError("cannot write " + path.string());
  });
}

json dice_json(const std::vector<LabelDice>& dice) {
  json j = json::array();
  for (const auto& d : dice)
    j.push_back({{"value", d.value}, {"name", d.name}, {"dice", d.dice ? json(*d.dice) : json(nullptr)},
                 {"reference_voxels", d.reference_voxels}, {"predicted_voxels", d.predicted_voxels}});
  return j;
}

std::vector<LabelDice> dice_from_json(const json& j) {
  std::vector<LabelDice> out;
  for (const auto& e : j) {
    LabelDice d;
    d.value = e.at("value");
    d.name = e.at("name");
    if (!e.at("dice").is_null()) d.dice = e.at("dice").get<double>();
    d.reference_voxels = e.value("reference_voxels", 0LL);
    d.predicted_voxels = e.value("predicted_voxels", 0LL);
    out.push_back(d);
  }
  return out;
}

json epoch_json(const EpochStats& e) {
  return {{"epoch", e.epoch}, {"loss", e.loss}, {"learning_rate", e.learning_rate}, {"seconds", e.seconds},
          {"mean_dice", e.mean_dice}, {"dice", dice_json(e.dice)}};
}

EpochStats epoch_from_json(const json& j) {
  EpochStats e;
  e.epoch = j.at("epoch");
  e.loss = j.at("loss");
  e.learning_rate = j.at("learning_rate");
  e.seconds = j.at("seconds");
  e.mean_dice = j.at("mean_dice");
  e.dice = dice_from_json(j.at("dice"));
  return e;
}

// Dice per label between two label arrays of equal size.
std::vector<LabelDice> dice_per_label(const std::uint8_t* pred, const std::uint8_t* ref, std::size_t n,
                                      const std::vector<LabelSpec>& labels) {
  std::array<long long, 256> tp{}, np{}, nr{};
  for (std::size_t i = 0; i < n; ++i) {
    ++np[pred[i]];
    ++nr[ref[i]];
    tp[pred[i]] += pred[i] == ref[i];
  }
  std::vector<LabelDice> out;
  for (const auto& l : labels) {
    LabelDice d;
    d.value = l.value;
    d.name = l.name;
    d.reference_voxels = nr[l.value];
    d.predicted_voxels = np[l.value];
    if (nr[l.value] + np[l.value] > 0) d.dice = 2.0 * double(tp[l.value]) / double(nr[l.value] + np[l.value]);
    out.push_back(d);
  }
  return out;
}

// ---- normalisation ---------------------------------------------------------------------------

// CT: clip to the 0.5/99.5 percentiles of the foreground intensities and z-score with the
// foreground's mean and std, fixed for every image (HU are absolute, so one set of statistics fits
// all scans and keeps e.g. contrast between organs that per-image z-scoring would blur).
Normalization ct_normalization(const std::vector<CaseData>& cases) {
  std::vector<float> fg;
  for (const auto& c : cases)
    for (std::size_t i = 0; i < c.labels.size(); ++i)
      if (c.labels[i]) fg.push_back(c.image[i]);
  if (fg.empty()) throw SegmentationError("no foreground voxels to compute the CT normalisation from");
  std::sort(fg.begin(), fg.end());
  auto pct = [&](double q) { return double(fg[std::size_t(q * double(fg.size() - 1))]); };
  Normalization n;
  n.scheme = Normalization::Scheme::CT;
  n.clip_low = std::floor(pct(0.005));
  n.clip_high = std::ceil(pct(0.995));
  double sum = 0, sum2 = 0;
  for (float v : fg) {
    const double c = std::clamp(double(v), n.clip_low, n.clip_high);
    sum += c;
    sum2 += c * c;
  }
  n.mean = sum / double(fg.size());
  n.std = std::max(1e-3, std::sqrt(std::max(0.0, sum2 / double(fg.size()) - n.mean * n.mean)));
  return n;
}

// The same arithmetic as inference's preprocessing, so training and segmenting see equal inputs.
void normalise(std::vector<float>& v, const Normalization& n) {
  switch (n.scheme) {
    case Normalization::Scheme::CT:
      for (auto& x : v) x = float((std::clamp(double(x), n.clip_low, n.clip_high) - n.mean) / n.std);
      break;
    case Normalization::Scheme::Fixed:
      for (auto& x : v) x = float((double(x) - n.mean) / n.std);
      break;
    case Normalization::Scheme::ZScore: {
      double sum = 0, sum2 = 0;
      std::size_t used = 0;
      for (float x : v)
        if (x != 0) sum += x, sum2 += double(x) * x, ++used;
      if (used == 0 || used == v.size()) {
        sum = sum2 = 0;
        for (float x : v) sum += x, sum2 += double(x) * x;
        used = v.size();
      }
      const double mean = sum / double(used);
      const double sd = std::sqrt(std::max(0.0, sum2 / double(used) - mean * mean));
      const double inv = sd > 1e-8 ? 1.0 / sd : 1.0;
      for (auto& x : v) x = float((x - mean) * inv);
      break;
    }
    case Normalization::Scheme::None:
      break;
  }
}

// ---- cases on the model grid as tensors ------------------------------------------------------

struct Case {
  torch::Tensor image;   // 1 x 1 x Z x Y x X, normalised, minus the pad value (so zero = outside)
  torch::Tensor labels;  // 1 x 1 x Z x Y x X float (grid_sample input)
  std::vector<std::uint8_t> raw_labels;
  std::array<int, 3> size{};
  std::vector<std::vector<std::int64_t>> foreground;  // per class value: voxel indices
  std::vector<int> present;                           // class values present
};

Case make_case(CaseData&& data, const Normalization& n, float pad, int num_classes) {
  Case c;
  c.size = data.size;
  normalise(data.image, n);
  const std::vector<int64_t> shape{1, 1, data.size[2], data.size[1], data.size[0]};
  c.image = torch::from_blob(data.image.data(), shape, torch::kFloat32).clone() - pad;
  std::vector<float> lf(data.labels.begin(), data.labels.end());
  c.labels = torch::from_blob(lf.data(), shape, torch::kFloat32).clone();
  c.foreground.resize(std::size_t(num_classes));
  for (std::size_t i = 0; i < data.labels.size(); ++i) {
    const int v = data.labels[i];
    if (v >= num_classes)
      throw SegmentationError(fmt::format("{}: label value {} but the model has {} classes", data.name, v, num_classes));
    if (v) c.foreground[std::size_t(v)].push_back(std::int64_t(i));
  }
  for (int v = 1; v < num_classes; ++v)
    if (!c.foreground[std::size_t(v)].empty()) c.present.push_back(v);
  c.raw_labels = std::move(data.labels);
  return c;
}

// ---- patch sampling --------------------------------------------------------------------------

struct Sampler {
  const TrainOptions& o;
  int dims;
  std::array<int, 3> patch;  // x y z (z = 1 for 2D)
  float pad;
  torch::Tensor base;        // P x 3 voxel offsets (x y z) of the patch's voxels from its centre

  Sampler(const TrainOptions& options, int dimensions, std::array<int, 3> p, float pad_value)
      : o(options), dims(dimensions), patch(p), pad(pad_value) {
    auto z = torch::arange(patch[2], torch::kFloat32) - float(patch[2] - 1) / 2;
    auto y = torch::arange(patch[1], torch::kFloat32) - float(patch[1] - 1) / 2;
    auto x = torch::arange(patch[0], torch::kFloat32) - float(patch[0] - 1) / 2;
    auto g = torch::meshgrid({z, y, x}, "ij");
    base = torch::stack({g[2].flatten(), g[1].flatten(), g[0].flatten()}, 1);
  }

  // One patch: image 1 x pz x py x px (channel first), labels pz x py x px (int64).
  std::pair<torch::Tensor, torch::Tensor> sample(const Case& c, std::mt19937& rng, bool foreground) const {
    std::uniform_real_distribution<double> unit(0, 1);
    std::array<double, 3> centre{};
    if (foreground && !c.present.empty()) {
      const int cls = c.present[std::uniform_int_distribution<std::size_t>(0, c.present.size() - 1)(rng)];
      const auto& list = c.foreground[std::size_t(cls)];
      const auto idx = list[std::uniform_int_distribution<std::size_t>(0, list.size() - 1)(rng)];
      centre = {double(idx % c.size[0]), double(idx / c.size[0] % c.size[1]), double(idx / (std::int64_t(c.size[0]) * c.size[1]))};
    } else {
      for (int a = 0; a < 3; ++a) centre[a] = std::floor(unit(rng) * c.size[a]);
    }
    // Patch axes in source voxel units: rotation * scale, with mirrored axes (x y z columns).
    double m[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    if (o.augment) {
      const double deg = M_PI / 180.0;
      auto angle = [&] { return (unit(rng) * 2 - 1) * o.rotation_degrees * deg; };
      const double az = angle();
      const double ax = dims == 3 ? angle() : 0.0, ay = dims == 3 ? angle() : 0.0;
      const double s = 1.0 + (unit(rng) * 2 - 1) * o.scale_range;
      auto mul = [](const double a[3][3], const double b[3][3], double r[3][3]) {
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
      };
      const double rz[3][3] = {{std::cos(az), -std::sin(az), 0}, {std::sin(az), std::cos(az), 0}, {0, 0, 1}};
      const double rx[3][3] = {{1, 0, 0}, {0, std::cos(ax), -std::sin(ax)}, {0, std::sin(ax), std::cos(ax)}};
      const double ry[3][3] = {{std::cos(ay), 0, std::sin(ay)}, {0, 1, 0}, {-std::sin(ay), 0, std::cos(ay)}};
      double t[3][3];
      mul(rz, rx, t);
      mul(t, ry, m);
      for (auto& row : m)
        for (auto& v : row) v *= s;
      for (int a = 0; a < dims; ++a) {
        const char axis = "xyz"[a];
        if (o.flip_axes.find(axis) != std::string::npos && unit(rng) < 0.5)
          for (auto& row : m) row[a] = -row[a];
      }
    }
    auto mt = torch::tensor({m[0][0], m[1][0], m[2][0], m[0][1], m[1][1], m[2][1], m[0][2], m[1][2], m[2][2]},
                            torch::kFloat32).view({3, 3});  // rows: patch axis, columns: source x y z
    auto src = base.matmul(mt) + torch::tensor({float(centre[0]), float(centre[1]), float(centre[2])});
    // grid_sample wants normalised coordinates in [-1, 1] (align_corners: -1 and 1 are the centres
    // of the first and last voxels).
    std::vector<float> scale(3), shift(3);
    for (int a = 0; a < 3; ++a) {
      scale[a] = c.size[a] > 1 ? 2.0f / float(c.size[a] - 1) : 0.0f;
      shift[a] = c.size[a] > 1 ? -1.0f : 0.0f;
    }
    auto grid = (src * torch::tensor(scale) + torch::tensor(shift)).view({1, patch[2], patch[1], patch[0], 3});
    auto image = F::grid_sample(c.image, grid, F::GridSampleFuncOptions().mode(torch::kBilinear)
                                                   .padding_mode(torch::kZeros).align_corners(true)) + pad;
    auto labels = F::grid_sample(c.labels, grid, F::GridSampleFuncOptions().mode(torch::kNearest)
                                                     .padding_mode(torch::kZeros).align_corners(true));
    image = image[0];                                    // 1 x pz x py x px
    labels = labels[0][0].round().to(torch::kLong);      // pz x py x px
    if (o.augment && o.intensity_range > 0) {
      const double r = o.intensity_range;
      const double contrast = 1.0 + (unit(rng) * 2 - 1) * r * 2;
      const double brightness = (unit(rng) * 2 - 1) * r;
      auto mean = image.mean();
      image = (image - mean) * contrast + mean + brightness;
      if (unit(rng) < 0.15) image = image + torch::randn_like(image) * (unit(rng) * r);
    }
    if (dims == 2) {
      image = image.squeeze(1);   // 1 x py x px
      labels = labels.squeeze(0); // py x px
    }
    return {image, labels};
  }
};

// ---- loss ------------------------------------------------------------------------------------

// Cross-entropy plus (1 - soft Dice over the foreground classes), Dice computed over the whole
// batch so a patch without some organ does not produce a meaningless 0/0.
torch::Tensor dice_ce(const torch::Tensor& logits, const torch::Tensor& target) {
  const auto classes = logits.size(1);
  auto ce = F::cross_entropy(logits, target);
  auto probs = torch::softmax(logits, 1);
  std::vector<int64_t> perm{0, logits.dim() - 1};
  for (int64_t d = 1; d < logits.dim() - 1; ++d) perm.push_back(d);
  auto onehot = F::one_hot(target, classes).permute(perm).to(torch::kFloat32);
  std::vector<int64_t> reduce{0};
  for (int64_t d = 2; d < logits.dim(); ++d) reduce.push_back(d);
  auto inter = (probs * onehot).sum(reduce);
  auto denom = probs.sum(reduce) + onehot.sum(reduce);
  auto dice = (2 * inter + 1e-5) / (denom + 1e-5);
  return ce + 1 - dice.slice(0, 1).mean();
}

torch::Tensor downsample_target(const torch::Tensor& target, int factor) {
  torch::Tensor t = target;
  for (int64_t d = 1; d < t.dim(); ++d) t = t.slice(d, 0, t.size(d), factor);
  return t;
}

torch::Tensor total_loss(const UNetOutput& out, const torch::Tensor& target) {
  // Deep outputs weigh half as much per level down; weights sum to one.
  double weight = 1, sum = 1;
  auto loss = dice_ce(out.logits, target);
  for (std::size_t k = 0; k < out.deep.size(); ++k) {
    weight /= 2;
    sum += weight;
    loss = loss + weight * dice_ce(out.deep[k], downsample_target(target, 1 << (k + 1)));
  }
  return loss / sum;
}

// ---- inference on the model grid (validation, evaluation) ------------------------------------

// Full-volume forward (padded to the size divisor with the pad value); the volumes here are small
// (a few hundred thousand voxels at the model's spacing). 2D models run all slices as one batch.
std::vector<std::uint8_t> predict(UNet& net, const torch::Tensor& image_minus_pad, float pad,
                                  const std::array<int, 3>& size) {
  torch::NoGradGuard no_grad;
  const bool was_training = net->is_training();
  net->eval();
  const int div = net->size_divisor();
  auto up = [&](int n) { return (n + div - 1) / div * div; };
  torch::Tensor x = image_minus_pad[0];  // 1 x Z x Y x X
  torch::Tensor logits;
  if (net->options().dimensions == 3) {
    x = F::pad(x.unsqueeze(0), F::PadFuncOptions({0, up(size[0]) - size[0], 0, up(size[1]) - size[1], 0,
                                                  up(size[2]) - size[2]}));
    logits = net->forward(x + pad);
    logits = logits.slice(2, 0, size[2]).slice(3, 0, size[1]).slice(4, 0, size[0]);
    logits = logits[0];
  } else {
    x = F::pad(x.permute({1, 0, 2, 3}), F::PadFuncOptions({0, up(size[0]) - size[0], 0, up(size[1]) - size[1]}));
    std::vector<torch::Tensor> slices;
    for (int64_t z = 0; z < x.size(0); z += 16)  // bounded memory on long volumes
      slices.push_back(net->forward(x.slice(0, z, std::min<int64_t>(z + 16, x.size(0))) + pad));
    logits = torch::cat(slices, 0).slice(2, 0, size[1]).slice(3, 0, size[0]).permute({1, 0, 2, 3});
  }
  auto labels = logits.argmax(0).to(torch::kUInt8).contiguous();
  if (was_training) net->train();
  const auto* p = labels.data_ptr<std::uint8_t>();
  return {p, p + labels.numel()};
}

std::vector<LabelDice> mean_dice(const std::vector<std::vector<LabelDice>>& per_case) {
  std::vector<LabelDice> out = per_case.front();
  for (std::size_t l = 0; l < out.size(); ++l) {
    double sum = 0;
    int n = 0;
    long long ref = 0, pred = 0;
    for (const auto& c : per_case) {
      if (c[l].dice) sum += *c[l].dice, ++n;
      ref += c[l].reference_voxels;
      pred += c[l].predicted_voxels;
    }
    out[l].dice = n ? std::optional<double>(sum / n) : std::nullopt;
    out[l].reference_voxels = ref;
    out[l].predicted_voxels = pred;
  }
  return out;
}

double mean_of(const std::vector<LabelDice>& d) {
  double s = 0;
  int n = 0;
  for (const auto& x : d)
    if (x.dice) s += *x.dice, ++n;
  return n ? s / n : 0.0;
}

void set_threads(int threads) {
  const int n = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(n);
}

float pad_value(const Normalization& n) {
  // What lies outside the image: the darkest normalised intensity (air for CT), as the sliding
  // window pads with each channel's minimum.
  if (n.scheme == Normalization::Scheme::CT) return float((n.clip_low - n.mean) / n.std);
  return 0.0f;
}

LabelSpec label_from_json(const json& l) {
  LabelSpec s;
  s.value = l.at("value").get<int>();
  s.name = l.at("name").get<std::string>();
  s.sources = l.at("sources").get<std::vector<int>>();
  s.color = l.at("color").get<std::array<int, 3>>();
  return s;
}

std::vector<LabelSpec> identity_labels(int max_value) {
  std::vector<LabelSpec> specs;
  for (int v = 1; v <= max_value; ++v) specs.push_back({v, fmt::format("label_{}", v), {v}, {128, 128, 128}});
  return specs;
}

}  // namespace

// ---- training --------------------------------------------------------------------------------

TrainResult train_unet(const TrainOptions& o, const std::function<void(const TrainProgress&)>& progress,
                       const std::atomic<bool>* stop) {
  const auto t_start = std::chrono::steady_clock::now();
  if (o.training.empty()) throw SegmentationError("training needs at least one image/label pair");
  if (o.output.empty()) throw SegmentationError("training needs an output folder");
  if (o.epochs < 1 || o.iterations_per_epoch < 1 || o.batch_size < 1)
    throw SegmentationError("epochs, iterations per epoch and batch size must be at least 1");
  if (o.optimizer != "adam" && o.optimizer != "sgd")
    throw SegmentationError("optimizer must be adam or sgd, got '" + o.optimizer + "'");
  set_threads(o.threads);
  const fs::path checkpoint_path = o.output / "checkpoint.pt", state_path = o.output / "training.json";
  const fs::path card_path = o.output / "model.json", weights_path = o.output / "model.pt";

  json state;
  if (o.resume) {
    if (!fs::exists(state_path) || !fs::exists(checkpoint_path))
      throw SegmentationError("cannot resume: " + o.output.string() + " has no checkpoint.pt and training.json");
    std::ifstream f(state_path);
    try {
      state = json::parse(f);
    } catch (const json::exception& e) {
      throw SegmentationError(state_path.string() + ": " + e.what());
    }
  }

  // Architecture, labels, normalisation and grid: from the resumed state, the initial model
  // (fine-tuning) or the options, in that order.
  std::optional<ModelCard> init_card;
  if (!o.init.empty()) {
    init_card = load_card(o.init);
    if (init_card->format != "native-unet")
      throw SegmentationError(o.init.string() + ": fine-tuning needs a native-unet model, this card is '" +
                              init_card->format + "'");
  }
  std::vector<LabelSpec> labels = o.labels;
  UNetOptions net_options;
  if (o.resume) {
    net_options = UNetOptions::from_json(state.at("unet"));
  } else if (init_card) {
    net_options = UNetOptions::from_json(init_card->unet);
    net_options.deep_supervision = o.deep_supervision;
    net_options.dropout = o.dropout;
  } else {
    net_options.dimensions = o.dimensions;
    net_options.base_channels = o.base_channels;
    net_options.depth = o.depth;
    net_options.dropout = o.dropout;
    net_options.deep_supervision = o.deep_supervision;
  }
  const int dims = net_options.dimensions;

  std::vector<double> spacing = o.spacing;
  if (o.resume) spacing = state.at("spacing").get<std::vector<double>>();
  else if (spacing.empty() && init_card) spacing = init_card->spacing;
  std::vector<int> patch = o.patch_size;
  if (o.resume) patch = state.at("patch_size").get<std::vector<int>>();
  if (int(patch.size()) != dims)
    throw SegmentationError(fmt::format("patch size has {} values, the {}D model needs {}", patch.size(), dims, dims));
  const int divisor = 1 << (net_options.depth - 1);
  for (int p : patch)
    if (p < divisor || p % divisor)
      throw SegmentationError(fmt::format("patch size {} is not a positive multiple of {} (2^(depth-1))", p, divisor));

  // Grid spacing: given, or the first training image's.
  std::array<double, 3> grid_spacing{};
  {
    const auto first = detail::read_image(o.training.front().image, o.training.front().series);
    for (int a = 0; a < 3; ++a) grid_spacing[a] = first->GetSpacing()[a];
    if (!spacing.empty()) {
      if (int(spacing.size()) != dims)
        throw SegmentationError(fmt::format("spacing has {} values, the {}D model needs {}", spacing.size(), dims, dims));
      for (int a = 0; a < dims; ++a) grid_spacing[a] = spacing[std::size_t(a)];
    }
    spacing.assign(grid_spacing.begin(), grid_spacing.begin() + dims);
  }

  // Load data; labels default to the values found in the maps.
  std::vector<CaseData> train_data, val_data;
  for (const auto& p : o.training) train_data.push_back(detail::load_case(p, grid_spacing, labels));
  if (labels.empty()) {
    if (o.resume) {
      for (const auto& l : state.at("labels"))
        labels.push_back(label_from_json(l));
    } else {
      int max_value = 0;
      for (const auto& c : train_data) max_value = std::max<int>(max_value, *std::max_element(c.labels.begin(), c.labels.end()));
      labels = identity_labels(max_value);
    }
  }
  net_options.num_classes = 0;
  for (const auto& l : labels) net_options.num_classes = std::max(net_options.num_classes, l.value + 1);
  for (const auto& p : o.validation) val_data.push_back(detail::load_case(p, grid_spacing, labels));

  Normalization norm;
  if (o.resume) {
    const auto& n = state.at("normalization");
    norm.scheme = n.at("scheme") == "ct" ? Normalization::Scheme::CT
                  : n.at("scheme") == "zscore" ? Normalization::Scheme::ZScore
                                               : Normalization::Scheme::None;
    norm.clip_low = n.at("clip_low");
    norm.clip_high = n.at("clip_high");
    norm.mean = n.at("mean");
    norm.std = n.at("std");
  } else if (init_card && !init_card->channels.empty()) {
    norm = init_card->channels.front().normalization;  // the pretrained network's inputs
  } else if (o.normalization == "ct") {
    norm = ct_normalization(train_data);
  } else if (o.normalization == "zscore") {
    norm.scheme = Normalization::Scheme::ZScore;
  } else if (o.normalization == "none") {
    norm.scheme = Normalization::Scheme::None;
  } else {
    throw SegmentationError("normalization must be ct, zscore or none, got '" + o.normalization + "'");
  }
  const float pad = pad_value(norm);

  std::vector<Case> train_cases, val_cases;
  for (auto& c : train_data) train_cases.push_back(make_case(std::move(c), norm, pad, net_options.num_classes));
  for (auto& c : val_data) val_cases.push_back(make_case(std::move(c), norm, pad, net_options.num_classes));
  train_data.clear();
  val_data.clear();
  // Without validation pairs, the training pairs are validated (then the Dice is a training Dice).
  const std::vector<Case>& validate_on = val_cases.empty() ? train_cases : val_cases;

  torch::manual_seed(o.seed);
  UNet net(net_options);
  std::vector<std::string> notes;
  if (init_card && !o.resume) {
    const auto skipped = load_unet_weights(net, init_card->weights.string(), /*strict=*/false);
    notes.push_back(fmt::format("fine-tuning from {} ({} tensors re-initialised: {})", o.init.string(),
                                skipped.size(), skipped.empty() ? "none" : fmt::format("{}", fmt::join(skipped, ", "))));
  }
  net->train();

  const double lr0 = o.learning_rate > 0 ? o.learning_rate : (o.optimizer == "adam" ? 1e-3 : 1e-2);
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (o.optimizer == "adam")
    optimizer = std::make_unique<torch::optim::Adam>(net->parameters(),
                                                     torch::optim::AdamOptions(lr0).weight_decay(o.weight_decay));
  else
    optimizer = std::make_unique<torch::optim::SGD>(
        net->parameters(), torch::optim::SGDOptions(lr0).momentum(0.99).nesterov(true).weight_decay(o.weight_decay));
  auto set_lr = [&](double lr) {
    for (auto& g : optimizer->param_groups()) {
      if (o.optimizer == "adam") static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      else static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);
    }
  };

  TrainResult result;
  result.card = card_path;
  int first_epoch = 1;
  if (o.resume) {
    torch::serialize::InputArchive archive;
    archive.load_from(checkpoint_path.string());
    torch::serialize::InputArchive model_archive, optim_archive;
    archive.read("model", model_archive);
    archive.read("optimizer", optim_archive);
    net->load(model_archive);
    optimizer->load(optim_archive);
    for (const auto& e : state.at("history")) result.history.push_back(epoch_from_json(e));
    first_epoch = state.at("epoch").get<int>() + 1;
    notes = state.value("notes", std::vector<std::string>{});
    notes.push_back(fmt::format("resumed after epoch {}", first_epoch - 1));
  }
  result.first_epoch = first_epoch;

  const std::array<int, 3> patch3{patch[0], patch[1], dims == 3 ? patch[2] : 1};
  Sampler sampler(o, dims, patch3, pad);
  const long total_steps = long(o.epochs) * o.iterations_per_epoch;

  json labels_json = json::array();
  for (const auto& l : labels)
    labels_json.push_back({{"value", l.value}, {"name", l.name}, {"sources", l.sources}, {"color", l.color}});
  json norm_json = {{"scheme", norm.scheme == Normalization::Scheme::CT ? "ct"
                               : norm.scheme == Normalization::Scheme::ZScore ? "zscore" : "none"},
                    {"clip_low", norm.clip_low}, {"clip_high", norm.clip_high}, {"mean", norm.mean}, {"std", norm.std}};

  auto write_outputs = [&](int epoch) {
    fs::create_directories(o.output);  // only now: bad options or data leave nothing behind
    // Weights + card first, then the checkpoint, then the state that points at both: a stop at any
    // moment leaves the previous epoch's consistent set or the new one.
    write_atomically(weights_path, [&](const fs::path& tmp) { save_unet(net, tmp.string()); });
    ModelCard card;
    card.name = o.name;
    card.version = fmt::format("epoch-{}", epoch);
    card.description = o.description.empty() ? fmt::format("Native U-Net trained by sagitta train ({} labels)", labels.size())
                                             : o.description;
    card.format = "native-unet";
    card.weights = fs::absolute(weights_path);
    card.dimensions = dims;
    card.channels = {InputChannel{norm.scheme == Normalization::Scheme::CT ? "CT" : "image", norm}};
    card.spacing = spacing;
    card.patch_size = patch;
    card.labels.push_back(Label{0, "background", {0, 0, 0}, std::nullopt, std::nullopt});
    for (const auto& l : labels) card.labels.push_back(Label{l.value, l.name, l.color, std::nullopt, std::nullopt});
    card.gradcam_layer = fmt::format("decoder.{}", net_options.depth - 2);
    if (net_options.depth < 2) card.gradcam_layer = "bottleneck";
    card.returns_activation = false;
    UNetOptions saved = net_options;
    saved.deep_supervision = false;  // inference never needs the extra heads
    card.unet = saved.to_json();
    json history = json::array();
    for (const auto& e : result.history) history.push_back(epoch_json(e));
    json pairs = json::array();
    for (const auto& p : o.training) pairs.push_back({{"image", p.image.string()}, {"label", p.label.string()}});
    card.provenance = {{"tool", "sagitta train"}, {"command", o.command}, {"epochs", epoch},
                       {"training_pairs", pairs}, {"labels", labels_json}, {"optimizer", o.optimizer},
                       {"learning_rate", lr0}, {"patch_size", patch}, {"grid", "axis-aligned (identity direction, LPS)"},
                       {"pad_value", pad}, {"validation", val_cases.empty() ? "training pairs" : "validation pairs"},
                       {"final_validation_dice", result.history.empty() ? json(nullptr) : dice_json(result.history.back().dice)},
                       {"notes", notes}};
    save_card(card, card_path);
    write_atomically(checkpoint_path, [&](const fs::path& tmp) {
      torch::serialize::OutputArchive archive, model_archive, optim_archive;
      net->save(model_archive);
      optimizer->save(optim_archive);
      archive.write("model", model_archive);
      archive.write("optimizer", optim_archive);
      archive.save_to(tmp.string());
    });
    write_json(state_path, {{"epoch", epoch}, {"epochs", o.epochs}, {"unet", net_options.to_json()},
                            {"spacing", spacing}, {"patch_size", patch}, {"labels", labels_json},
                            {"normalization", norm_json}, {"history", history}, {"notes", notes},
                            {"seed", o.seed}});
  };

  for (int epoch = first_epoch; epoch <= o.epochs; ++epoch) {
    const auto t_epoch = std::chrono::steady_clock::now();
    // Seeded per epoch, so a resumed run draws the same patches as an uninterrupted one.
    std::mt19937 rng(o.seed * 1000003u + unsigned(epoch));
    torch::manual_seed(o.seed * 7919u + unsigned(epoch));
    std::uniform_real_distribution<double> unit(0, 1);
    double loss_sum = 0, lr = lr0;
    bool stopped = false;
    for (int it = 0; it < o.iterations_per_epoch; ++it) {
      if (stop && stop->load()) {
        stopped = true;
        break;
      }
      const long step = long(epoch - 1) * o.iterations_per_epoch + it;
      lr = lr0 * std::pow(1.0 - double(step) / double(total_steps), 0.9);
      set_lr(lr);
      std::vector<torch::Tensor> images, targets;
      bool any_fg = false;
      for (int b = 0; b < o.batch_size; ++b) {
        const Case& c = train_cases[std::uniform_int_distribution<std::size_t>(0, train_cases.size() - 1)(rng)];
        // At least one foreground-centred patch per batch when oversampling is on: small organs
        // would otherwise be seen too rarely to learn.
        bool fg = unit(rng) < o.foreground_fraction;
        if (!fg && !any_fg && b == o.batch_size - 1 && o.foreground_fraction > 0) fg = true;
        any_fg = any_fg || fg;
        auto [x, y] = sampler.sample(c, rng, fg);
        images.push_back(x);
        targets.push_back(y);
      }
      auto x = torch::stack(images), y = torch::stack(targets);
      optimizer->zero_grad();
      auto out = net->forward_all(x);
      auto loss = total_loss(out, y);
      loss.backward();
      // Clipping keeps the first iterations (random weights, large Dice gradients) stable.
      torch::nn::utils::clip_grad_norm_(net->parameters(), 12.0);
      optimizer->step();
      loss_sum += loss.item<double>();
      if (progress) {
        TrainProgress p;
        p.epoch = epoch;
        p.epochs = o.epochs;
        p.iteration = it + 1;
        p.iterations = o.iterations_per_epoch;
        p.loss = loss_sum / (it + 1);
        progress(p);
      }
    }
    if (stopped) {
      result.stopped = true;
      break;
    }
    EpochStats stats;
    stats.epoch = epoch;
    stats.loss = loss_sum / o.iterations_per_epoch;
    stats.learning_rate = lr;
    std::vector<std::vector<LabelDice>> per_case;
    for (const auto& c : validate_on) {
      const auto pred = predict(net, c.image, pad, c.size);
      per_case.push_back(dice_per_label(pred.data(), c.raw_labels.data(), pred.size(), labels));
    }
    stats.dice = mean_dice(per_case);
    stats.mean_dice = mean_of(stats.dice);
    stats.seconds = since(t_epoch);
    result.history.push_back(stats);
    write_outputs(epoch);
    if (progress) {
      TrainProgress p;
      p.epoch = epoch;
      p.epochs = o.epochs;
      p.iteration = p.iterations = o.iterations_per_epoch;
      p.loss = stats.loss;
      p.finished = &result.history.back();
      progress(p);
    }
  }

  if (!result.stopped && !o.test.empty()) result.test = evaluate_into_card(card_path, o.test, labels, o.threads);
  result.seconds = since(t_start);
  return result;
}

// ---- evaluation ------------------------------------------------------------------------------

std::vector<LabelDice> evaluate_model(const fs::path& card_path, const TrainingPair& pair,
                                      const std::vector<LabelSpec>& given, int threads) {
  set_threads(threads);
  const auto card = load_card(card_path);
  if (card.format != "native-unet")
    throw SegmentationError(card_path.string() + ": evaluate_model needs a native-unet model");
  std::vector<LabelSpec> labels = given;
  if (labels.empty() && card.provenance.contains("labels"))
    for (const auto& l : card.provenance["labels"])
      labels.push_back(label_from_json(l));
  if (labels.empty())
    for (const auto& l : card.labels)
      if (l.value) labels.push_back({l.value, l.name, {l.value}, l.color});
  if (card.channels.size() != 1) throw SegmentationError("evaluate_model handles single-channel models");
  const auto& norm = card.channels.front().normalization;

  const auto image = detail::read_image(pair.image, pair.series);
  std::array<double, 3> spacing{};
  for (int a = 0; a < 3; ++a)
    spacing[a] = a < int(card.spacing.size()) ? card.spacing[std::size_t(a)] : image->GetSpacing()[a];
  auto grid_image = detail::resample_canonical(*image, spacing, false, -1024.0f);
  std::vector<float> values(grid_image->GetBufferPointer(),
                            grid_image->GetBufferPointer() + grid_image->GetBufferedRegion().GetNumberOfPixels());
  normalise(values, norm);
  // The product's inference path: Gaussian-weighted sliding windows of the card's patch size
  // (instance-norm statistics then match training patches, unlike one full-volume forward).
  auto channel = Image::New();
  channel->CopyInformation(grid_image);
  channel->SetRegions(grid_image->GetLargestPossibleRegion());
  channel->Allocate();
  std::copy(values.begin(), values.end(), channel->GetBufferPointer());
  ModelOptions model_options;
  model_options.threads = threads;
  const Model model = Model::load(card, model_options);
  const auto windows = sliding_window(model, {channel});
  std::vector<std::uint8_t> pred(values.size(), 0);
  {
    std::vector<float> best(values.size(), -std::numeric_limits<float>::infinity());
    for (std::size_t k = 0; k < windows.logits.size(); ++k) {
      const float* l = windows.logits[k]->GetBufferPointer();
      for (std::size_t i = 0; i < pred.size(); ++i)
        if (l[i] > best[i]) best[i] = l[i], pred[i] = std::uint8_t(k);
    }
  }

  // Back to the label map's own grid: the Dice is measured where the reference was drawn.
  auto pred_image = Image::New();
  pred_image->CopyInformation(grid_image);
  pred_image->SetRegions(grid_image->GetLargestPossibleRegion());
  pred_image->Allocate();
  std::copy(pred.begin(), pred.end(), pred_image->GetBufferPointer());
  Image::Pointer reference;
  try {
    reference = sagitta::read_volume(pair.label);
  } catch (const dicom::DicomError& e) {
    throw SegmentationError(e.what());
  }
  auto pred_on_ref = detail::resample_like(*pred_image, *reference, true, 0.0f);
  std::vector<LabelSpec> identity;
  for (const auto& l : labels) identity.push_back({l.value, l.name, {l.value}, l.color});
  const auto pred_labels = detail::remap_labels(*pred_on_ref, identity);
  const auto ref_labels = detail::remap_labels(*reference, labels);
  return dice_per_label(pred_labels.data(), ref_labels.data(), ref_labels.size(), labels);
}

std::vector<std::vector<LabelDice>> evaluate_into_card(const fs::path& card_path, const std::vector<TrainingPair>& tests,
                                                       const std::vector<LabelSpec>& labels, int threads) {
  std::vector<std::vector<LabelDice>> results;
  for (const auto& t : tests) results.push_back(evaluate_model(card_path, t, labels, threads));
  // Held-out results go into the card's provenance: whoever uses the model sees them.
  auto card = load_card(card_path);
  json j = json::array();
  for (std::size_t i = 0; i < tests.size(); ++i)
    j.push_back({{"image", tests[i].image.string()}, {"label", tests[i].label.string()},
                 {"method", "sliding window on the axis-aligned model grid, Dice in the label map's geometry"},
                 {"dice", dice_json(results[i])}});
  card.provenance["test"] = j;
  save_card(card, card_path);
  return results;
}

}  // namespace sagitta::segmentation

// The demo pathology model: Sagitta's native U-Net with 3 (RGB) input channels, trained on H&E
// pseudo-labels (colour deconvolution: background / tissue / haematoxylin-dense nuclei) of real
// slides at a fixed microns per pixel, and scored against the pseudo-labels of held-out parts of
// the slides through the product's own whole-slide path (segment_slide, then the mask read back).
// train.cpp trains from volumes with one channel; slides are RGB images read through OpenSlide,
// hence this separate, small loop over the same U-Net.
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "sagitta/segmentation/error.h"
#include "sagitta/core/model_card.h"
#include "unet.h"
#include "sagitta/segmentation/wsi.h"
#include "losses.h"
#include "wsi_internal.h"

namespace sagitta::segmentation::wsi {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

struct SlideData {
  std::string name;
  fs::path path;
  double mpp = 0;
  std::string mpp_source;
  int width = 0, height = 0, train_rows = 0;
  torch::Tensor image;   // 3 x H x W, 0..255
  torch::Tensor labels;  // H x W int64
};

SlideData load(const fs::path& path, double assume_mpp, double model_mpp, double holdout, double nuclei_threshold) {
  const Slide slide = Slide::open(path);
  const auto& info = slide.info();
  SlideData d;
  d.path = path;
  d.name = slide_name(path);
  if (assume_mpp > 0) {
    d.mpp = assume_mpp, d.mpp_source = "assumed";
  } else if (info.mpp_x && info.mpp_y) {
    d.mpp = std::sqrt(*info.mpp_x * *info.mpp_y), d.mpp_source = "file";
  } else {
    throw SegmentationError("slide " + path.string() + " gives no resolution; pass one with assume_mpp");
  }
  const double ds = model_mpp / d.mpp;
  const int level = slide.best_level(ds);
  const double r = ds / info.levels[std::size_t(level)].downsample;
  d.width = int(std::ceil(double(info.levels[0].width) / ds));
  d.height = int(std::ceil(double(info.levels[0].height) / ds));
  // The same resampling as inference, so the network is trained on the pixels it will see.
  const std::vector<float> rgb = detail::resample_region(slide, level, r, 0, 0, d.width, d.height);
  RgbImage u8{d.width, d.height, std::vector<std::uint8_t>(rgb.size())};
  for (std::size_t i = 0; i < rgb.size(); ++i) u8.pixels[i] = std::uint8_t(std::clamp(std::lround(rgb[i]), 0L, 255L));
  const std::vector<std::uint8_t> labels = he_pseudo_labels(u8, nuclei_threshold);
  d.image = torch::from_blob(const_cast<float*>(rgb.data()), {d.height, d.width, 3}, torch::kFloat32).permute({2, 0, 1}).clone();
  d.labels = torch::from_blob(const_cast<std::uint8_t*>(labels.data()), {d.height, d.width}, torch::kUInt8).to(torch::kLong);
  d.train_rows = int(std::floor(double(d.height) * (1.0 - holdout)));
  return d;
}

// Fixed per-channel normalisation from the training parts of the slides.
struct ChannelStats {
  std::array<double, 3> mean{}, sd{};
  torch::Tensor mean_t, sd_t;  // 3 x 1 x 1
};

ChannelStats channel_stats(const std::vector<SlideData>& data) {
  ChannelStats s;
  std::vector<torch::Tensor> parts;
  for (const auto& d : data) parts.push_back(d.image.slice(1, 0, d.train_rows).reshape({3, -1}));
  const auto all = torch::cat(parts, 1);
  for (int c = 0; c < 3; ++c) {
    s.mean[std::size_t(c)] = all[c].mean().item<double>();
    s.sd[std::size_t(c)] = std::max(1.0, all[c].std().item<double>());
  }
  s.mean_t = torch::tensor({s.mean[0], s.mean[1], s.mean[2]}, torch::kFloat32).view({3, 1, 1});
  s.sd_t = torch::tensor({s.sd[0], s.sd[1], s.sd[2]}, torch::kFloat32).view({3, 1, 1});
  return s;
}

UNetOptions demo_net_options(const DemoTrainOptions& o) {
  UNetOptions net_options;
  net_options.dimensions = 2;
  net_options.in_channels = 3;
  net_options.num_classes = 3;
  net_options.base_channels = o.base_channels;
  net_options.depth = o.depth;
  net_options.deep_supervision = false;
  return net_options;
}

// One augmented training patch of `d` (image 3 x p x p, 0..255; labels p x p).
std::pair<torch::Tensor, torch::Tensor> sample_patch(const SlideData& d, int p, std::mt19937& rng) {
  std::uniform_real_distribution<double> unit(0, 1);
  if (d.train_rows < p || d.width < p) throw SegmentationError("slide " + d.name + " is smaller than a patch");
  // Half the patches are centred on tissue, so glass does not dominate.
  int x = 0, y = 0;
  for (int tries = 0; tries < 20; ++tries) {
    x = std::uniform_int_distribution<int>(0, d.width - p)(rng);
    y = std::uniform_int_distribution<int>(0, d.train_rows - p)(rng);
    if (unit(rng) < 0.5 || d.labels[y + p / 2][x + p / 2].item<long>() > 0) break;
  }
  auto img = d.image.slice(1, y, y + p).slice(2, x, x + p);
  auto lab = d.labels.slice(0, y, y + p).slice(1, x, x + p);
  // Slides have no orientation: any rotation by 90 degrees and mirror is an equally real slide.
  const int rot = std::uniform_int_distribution<int>(0, 3)(rng);
  img = torch::rot90(img, rot, {1, 2});
  lab = torch::rot90(lab, rot, {0, 1});
  if (unit(rng) < 0.5) img = img.flip({2}), lab = lab.flip({1});
  // Stain and scanner variation: a small per-channel gain and offset.
  auto gain = 1 + (torch::rand({3, 1, 1}) * 2 - 1) * 0.08;
  auto offset = (torch::rand({3, 1, 1}) * 2 - 1) * 8;
  img = (img * gain + offset).clamp(0, 255);
  return {img, lab};
}

// Adam with a poly learning rate over the epochs; the history of mean losses per epoch.
json train_epochs(UNet& net, const std::vector<SlideData>& data, const ChannelStats& stats,
                  const DemoTrainOptions& o) {
  torch::optim::Adam optimizer(net->parameters(), torch::optim::AdamOptions(o.learning_rate).weight_decay(3e-5));
  std::mt19937 rng(o.seed);
  json history = json::array();
  const long total_steps = long(o.epochs) * o.iterations;
  for (int epoch = 1; epoch <= o.epochs; ++epoch) {
    double loss_sum = 0;
    for (int it = 0; it < o.iterations; ++it) {
      const long step = long(epoch - 1) * o.iterations + it;
      const double lr = o.learning_rate * std::pow(1.0 - double(step) / double(total_steps), 0.9);
      for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamOptions&>(g.options()).lr(lr);
      std::vector<torch::Tensor> xs, ys;
      for (int b = 0; b < o.batch_size; ++b) {
        const SlideData& d = data[std::uniform_int_distribution<std::size_t>(0, data.size() - 1)(rng)];
        auto [img, lab] = sample_patch(d, o.patch, rng);
        xs.push_back((img - stats.mean_t) / stats.sd_t);
        ys.push_back(lab);
      }
      optimizer.zero_grad();
      auto loss = segmentation::detail::dice_ce_loss(net->forward(torch::stack(xs)), torch::stack(ys));
      loss.backward();
      torch::nn::utils::clip_grad_norm_(net->parameters(), 12.0);
      optimizer.step();
      loss_sum += loss.item<double>();
    }
    history.push_back({{"epoch", epoch}, {"loss", loss_sum / o.iterations}});
    if (o.progress) o.progress(epoch, loss_sum / o.iterations);
  }
  return history;
}

json demo_provenance(const DemoTrainOptions& o, const std::vector<SlideData>& data, const json& history) {
  json slides = json::array();
  for (const auto& d : data)
    slides.push_back({{"slide", d.path.filename().string()}, {"mpp", d.mpp}, {"mpp_source", d.mpp_source},
                      {"size_at_model_mpp", {d.width, d.height}}, {"training_rows", {0, d.train_rows}},
                      {"held_out_rows", {d.train_rows, d.height}}});
  return {
      {"tool", "sagitta wsi train-demo"},
      {"command", o.command},
      {"labels_from",
       fmt::format("pseudo-labels, no human annotation: background where saturation < 0.08 and mean optical density < "
                   "0.2; nuclei where the haematoxylin optical density (Ruifrok-Johnston H&E deconvolution) >= {} "
                   "inside tissue, opened with a 3x3 square; tissue elsewhere",
                   o.nuclei_threshold)},
      {"slides", slides},
      {"epochs", o.epochs}, {"iterations", o.iterations}, {"batch", o.batch_size}, {"patch", o.patch},
      {"learning_rate", o.learning_rate}, {"seed", o.seed},
      {"augmentation", "rot90, mirror, per-channel gain +-8% and offset +-8"},
      {"history", history}};
}

ModelCard demo_card(const DemoTrainOptions& o, const UNetOptions& net_options, const ChannelStats& stats,
                    const fs::path& weights) {
  ModelCard card;
  card.name = "sagitta-demo-he-nuclei";
  card.version = fmt::format("epoch-{}", o.epochs);
  card.description =
      "DEMO ONLY, not for diagnosis. A tiny 2D U-Net for H&E slides at " + fmt::format("{}", o.mpp) +
      " um/px that imitates colour-deconvolution pseudo-labels (glass / tissue / haematoxylin-dense pixels, "
      "roughly nuclei) of two public slides. It learned a thresholding rule, not pathology.";
  card.format = "native-unet";
  card.weights = fs::absolute(weights);
  card.dimensions = 2;
  const char* names[3] = {"R", "G", "B"};
  for (int c = 0; c < 3; ++c) {
    Normalization n;
    n.scheme = Normalization::Scheme::Fixed;
    n.mean = stats.mean[std::size_t(c)];
    n.std = stats.sd[std::size_t(c)];
    card.channels.push_back({names[c], n});
  }
  card.spacing = {o.mpp / 1000, o.mpp / 1000};
  card.microns_per_pixel = o.mpp;
  card.patch_size = {o.patch, o.patch};
  card.labels = {Label{0, "background", {255, 255, 255}, std::nullopt, std::nullopt},
                 Label{1, "tissue", {236, 170, 200}, std::nullopt, std::nullopt},
                 Label{2, "nuclei", {60, 40, 160}, std::nullopt, std::nullopt}};
  card.gradcam_layer = fmt::format("decoder.{}", std::max(0, o.depth - 2));
  card.unet = net_options.to_json();
  return card;
}

// The held-out rows of one slide: Dice per class and pixel accuracy of the mask against the
// pseudo-labels.
json held_out_score(const SlideData& d, const LabelMask& mask, const ModelCard& card) {
  const auto ref = d.labels.to(torch::kUInt8).contiguous();
  const std::uint8_t* rp = ref.data_ptr<std::uint8_t>();
  json dice = json::array();
  long long agree = 0, n = 0;
  for (int cls = 0; cls < 3; ++cls) {
    long long tp = 0, np = 0, nr = 0;
    for (int y = d.train_rows; y < d.height; ++y)
      for (int x = 0; x < d.width; ++x) {
        const std::size_t i = std::size_t(y) * d.width + x;
        const bool pr = mask.labels[i] == cls, rf = rp[i] == cls;
        tp += pr && rf, np += pr, nr += rf;
        if (cls == 0) agree += mask.labels[i] == rp[i], ++n;
      }
    dice.push_back({{"value", cls}, {"name", card.labels[std::size_t(cls)].name},
                    {"dice", np + nr ? json(2.0 * double(tp) / double(np + nr)) : json(nullptr)},
                    {"reference_pixels", nr}, {"predicted_pixels", np}});
  }
  return {{"slide", d.path.filename().string()}, {"rows", {d.train_rows, d.height}},
          {"pixel_accuracy", n ? double(agree) / double(n) : 0.0}, {"dice", dice},
          {"method", "sagitta wsi segmentation of the whole slide (tissue detection, blending), held-out "
                     "rows compared with their pseudo-labels"}};
}

// Held-out score through the product path: segment each slide, read the mask back, compare the
// held-out rows with their pseudo-labels.
json held_out_test(const fs::path& card_path, const std::vector<SlideData>& data, const DemoTrainOptions& o) {
  const ModelCard loaded = load_card(card_path);
  ModelOptions mo;
  mo.threads = std::max(1, o.threads);
  const Model model = Model::load(loaded, mo);
  json test = json::array();
  for (const SlideData& d : data) {
    const fs::path tmp = o.output / (".eval-" + d.name);
    WsiOptions wo;
    wo.threads = mo.threads;
    if (d.mpp_source == "assumed") wo.assume_mpp = d.mpp;
    segment_slide(model, d.path, tmp, wo);
    const LabelMask mask = read_label_mask(SlideOutputs::in(tmp).mask);
    fs::remove_all(tmp);
    if (mask.width != d.width || mask.height != d.height)
      throw SegmentationError(fmt::format("evaluation: mask {}x{} but the slide is {}x{} at the model's resolution",
                                          mask.width, mask.height, d.width, d.height));
    test.push_back(held_out_score(d, mask, loaded));
  }
  return test;
}

}  // namespace

fs::path train_demo_model(const DemoTrainOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.slides.empty()) throw SegmentationError("training needs at least one slide");
  if (o.patch % 16) throw SegmentationError("the patch must be a multiple of 16");
  torch::set_num_threads(std::max(1, o.threads));
  torch::manual_seed(o.seed);
  std::vector<SlideData> data;
  for (std::size_t k = 0; k < o.slides.size(); ++k)
    data.push_back(load(o.slides[k], k < o.assume_mpp.size() ? o.assume_mpp[k] : 0.0, o.mpp, o.holdout, o.nuclei_threshold));
  const ChannelStats stats = channel_stats(data);
  const UNetOptions net_options = demo_net_options(o);
  UNet net(net_options);
  net->train();
  const json history = train_epochs(net, data, stats, o);

  fs::create_directories(o.output);
  const fs::path weights = o.output / "model.pt", card_path = o.output / "model.json";
  save_unet(net, weights.string());
  ModelCard card = demo_card(o, net_options, stats, weights);
  card.provenance = demo_provenance(o, data, history);
  save_card(card, card_path);

  const json test = held_out_test(card_path, data, o);
  ModelCard final_card = load_card(card_path);
  final_card.provenance["held_out_test"] = test;
  final_card.provenance["training_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  save_card(final_card, card_path);
  return card_path;
}

}  // namespace sagitta::segmentation::wsi

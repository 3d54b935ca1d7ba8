// Training's records without LibTorch: label specifications (parsed and as JSON), Dice and epoch
// history as JSON, the normalisation as training.json stores it, atomic writes, Dice arithmetic.
#include "train_records.h"

#include "sagitta/core/atomic_output.h"

#include <fmt/format.h>

#include <array>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The values of "name=value[+value...]" after the '='.
std::vector<int> label_sources(const std::string& values, const std::string& item) {
  std::vector<int> sources;
  std::stringstream vs(values);
  for (std::string v; std::getline(vs, v, '+');) {
    try {
      std::size_t used = 0;
      sources.push_back(std::stoi(v, &used));
      if (used != v.size()) throw std::invalid_argument(v);
    } catch (const std::exception&) {
      throw SegmentationError("labels: '" + v + "' in '" + item + "' is not an integer label value");
    }
  }
  return sources;
}

}  // namespace

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
    s.sources = label_sources(item.substr(eq + 1), item);
    specs.push_back(s);
  }
  if (specs.empty()) throw SegmentationError("labels: no label given");
  if (specs.size() > 254) throw SegmentationError("labels: at most 254 labels");
  return specs;
}

std::string provenance_path(const fs::path& path, const fs::path& card_folder) {
  const fs::path from = fs::absolute(card_folder).lexically_normal();
  const fs::path relative = fs::absolute(path).lexically_normal().lexically_relative(from);
  return relative.empty() ? path.string() : relative.string();
}

namespace detail {

void write_json(const fs::path& path, const json& j) {
  sagitta::write_atomically(path, [&](const fs::path& tmp) {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f.flush()) throw SegmentationError("cannot write " + path.string());
  });
}

json labels_json(const std::vector<LabelSpec>& labels) {
  json j = json::array();
  for (const auto& l : labels)
    j.push_back({{"value", l.value}, {"name", l.name}, {"sources", l.sources}, {"color", l.color}});
  return j;
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

json dice_json(const std::vector<LabelDice>& dice) {
  json j = json::array();
  for (const auto& d : dice)
    j.push_back({{"value", d.value}, {"name", d.name}, {"dice", d.dice ? json(*d.dice) : json(nullptr)},
                 {"reference_voxels", d.reference_voxels}, {"predicted_voxels", d.predicted_voxels}});
  return j;
}

namespace {

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

}  // namespace

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

json normalization_json(const Normalization& n) {
  return {{"scheme", n.scheme == Normalization::Scheme::CT ? "ct"
                     : n.scheme == Normalization::Scheme::ZScore ? "zscore" : "none"},
          {"clip_low", n.clip_low}, {"clip_high", n.clip_high}, {"mean", n.mean}, {"std", n.std}};
}

Normalization normalization_from_json(const json& j) {
  Normalization n;
  n.scheme = j.at("scheme") == "ct" ? Normalization::Scheme::CT
             : j.at("scheme") == "zscore" ? Normalization::Scheme::ZScore
                                          : Normalization::Scheme::None;
  n.clip_low = j.at("clip_low");
  n.clip_high = j.at("clip_high");
  n.mean = j.at("mean");
  n.std = j.at("std");
  return n;
}

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

double mean_of(const std::vector<LabelDice>& dice) {
  double s = 0;
  int n = 0;
  for (const auto& x : dice)
    if (x.dice) s += *x.dice, ++n;
  return n ? s / n : 0.0;
}

}  // namespace detail
}  // namespace sagitta::segmentation

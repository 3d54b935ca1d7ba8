// Model cards: JSON <-> ModelCard, validation, and the weights' sha256.
#include "sagitta/core/model_card.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <cctype>
#include <set>
#include <tuple>
#include <utility>

#include "sagitta/core/atomic_output.h"
#include "sagitta/core/error.h"
#include "sha256.h"

namespace sagitta {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using Scheme = Normalization::Scheme;
const std::pair<Scheme, const char*> kSchemes[] = {
    {Scheme::CT, "ct"},           {Scheme::ZScore, "zscore"}, {Scheme::Fixed, "fixed"},   {Scheme::None, "none"},
    {Scheme::Percentile, "percentile"}, {Scheme::MinMax, "minmax"}, {Scheme::Range, "range"},
};
const std::pair<Normalization::Mask, const char*> kMasks[] = {
    {Normalization::Mask::Auto, "auto"}, {Normalization::Mask::All, "all"}, {Normalization::Mask::NonZero, "nonzero"}};

template <typename E, std::size_t N>
const char* name_of(const std::pair<E, const char*> (&table)[N], E e) {
  for (const auto& [v, n] : table)
    if (v == e) return n;
  return table[0].second;
}

template <typename E, std::size_t N>
E parse_name(const std::pair<E, const char*> (&table)[N], const std::string& s, const char* what) {
  std::string names;
  for (const auto& [v, n] : table) {
    if (s == n) return v;
    names += names.empty() ? n : std::string(", ") + n;
  }
  throw Error(fmt::format("unknown {} '{}' (expected one of {})", what, s, names));
}

json normalization_json(const Normalization& n) {
  json j = {{"scheme", name_of(kSchemes, n.scheme)}};
  switch (n.scheme) {
    case Scheme::CT: j["clip"] = {n.clip_low, n.clip_high}; [[fallthrough]];
    case Scheme::Fixed: j["mean"] = n.mean, j["std"] = n.std; break;
    case Scheme::Percentile:
      j["percentiles"] = {n.lower, n.upper};
      if (n.zscore) j["then"] = "zscore";
      else j["then"] = "scale", j["b"] = {n.b_min, n.b_max}, j["clip"] = n.clip;
      break;
    case Scheme::Range: j["a"] = {n.a_min, n.a_max}, j["b"] = {n.b_min, n.b_max}, j["clip"] = n.clip; break;
    default: break;
  }
  if (n.scheme == Scheme::ZScore || n.scheme == Scheme::Percentile || n.scheme == Scheme::MinMax)
    j["mask"] = name_of(kMasks, n.mask);
  return j;
}

std::pair<double, double> pair_of(const json& j, const char* key) {
  const json& v = j.at(key);
  if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
    throw Error(fmt::format("normalization '{}' must be [low, high]", key));
  return {v[0].get<double>(), v[1].get<double>()};
}

Normalization normalization_from(const json& j) {
  Normalization n;
  n.scheme = parse_name(kSchemes, j.value("scheme", std::string("zscore")), "normalization scheme");
  // Sagitta's z-score always skipped an all-zero background unless told otherwise; percentiles and
  // min-max are over every voxel unless told otherwise, as MONAI and nnU-Net compute them.
  n.mask = parse_name(kMasks, j.value("mask", std::string(n.scheme == Scheme::ZScore ? "auto" : "all")),
                      "normalization mask");
  if (n.scheme == Scheme::CT && j.contains("clip")) std::tie(n.clip_low, n.clip_high) = pair_of(j, "clip");
  n.mean = j.value("mean", 0.0);
  n.std = j.value("std", 1.0);
  if (j.contains("percentiles")) std::tie(n.lower, n.upper) = pair_of(j, "percentiles");
  if (j.contains("a")) std::tie(n.a_min, n.a_max) = pair_of(j, "a");
  if (j.contains("b")) std::tie(n.b_min, n.b_max) = pair_of(j, "b");
  if (n.scheme != Scheme::CT && j.contains("clip")) n.clip = j["clip"].get<bool>();
  const std::string then = j.value("then", std::string("scale"));
  if (then != "scale" && then != "zscore") throw Error("normalization 'then' is '" + then + "' (expected scale or zscore)");
  n.zscore = then == "zscore";
  if (n.scheme == Scheme::Percentile && !(0 <= n.lower && n.lower < n.upper && n.upper <= 100))
    throw Error(fmt::format("percentiles [{}, {}] must satisfy 0 <= low < high <= 100", n.lower, n.upper));
  if (n.scheme == Scheme::Range && n.a_max == n.a_min) throw Error("normalization range a_min equals a_max");
  return n;
}

bool is_orientation_code(const std::string& s) {
  try {
    orientation_vectors(s);
    return true;
  } catch (const Error&) {
    return false;
  }
}

bool is_axes(const std::string& s, bool permutation) {
  std::set<char> seen;
  for (char ch : s)
    if ((ch != 'x' && ch != 'y' && ch != 'z') || !seen.insert(ch).second) return false;
  return !permutation || s.size() == 3;
}

json code_json(const Code& c) { return {{"value", c.value}, {"scheme", c.scheme}, {"meaning", c.meaning}}; }
Code code_from(const json& j) {
  return {j.at("value").get<std::string>(), j.at("scheme").get<std::string>(), j.value("meaning", std::string())};
}

// Throws when the card is inconsistent; `what` collects the first problem found.
void validate(const ModelCard& c) {
  auto fail = [](const std::string& m) { throw Error(m); };
  if (c.name.empty()) fail("'name' is empty");
  if (c.format != "torchscript" && c.format != "native-unet" && c.format != "nnunet")
    fail("'format' is '" + c.format + "' (expected torchscript, native-unet or nnunet)");
  if (c.orientation != "stored" && !is_orientation_code(c.orientation))
    fail("'orientation' is '" + c.orientation + "' (expected a code such as LPS or RAS, or \"stored\")");
  if (c.reorient != "grid" && c.reorient != "closest")
    fail("'reorient' is '" + c.reorient + "' (expected grid or closest)");
  if (c.orientation == "stored" && c.reorient != "closest")
    fail("'orientation' \"stored\" keeps the file's axes: it needs 'reorient' \"closest\"");
  if (!is_axes(c.tensor_axes, true)) fail("'tensor_axes' is '" + c.tensor_axes + "' (expected a permutation of xyz)");
  if (!is_axes(c.mirror_axes, false)) fail("'mirror_axes' is '" + c.mirror_axes + "' (expected letters of xyz)");
  if (c.activation != "softmax" && c.activation != "sigmoid")
    fail("'activation' is '" + c.activation + "' (expected softmax or sigmoid)");
  if ((c.activation == "sigmoid") != !c.regions.empty())
    fail("a sigmoid ('region-based') model needs 'regions', and only such a model has them");
  if (c.window_weights != "gaussian" && c.window_weights != "constant")
    fail("'window_weights' is '" + c.window_weights + "' (expected gaussian or constant)");
  if (!(c.sigma_scale > 0 && c.sigma_scale <= 10)) fail(fmt::format("'sigma_scale' is {} (expected (0, 10])", c.sigma_scale));
  if (c.crop_foreground_margin && *c.crop_foreground_margin < 0) fail("'crop_foreground_margin' must be >= 0");
  if (c.overlap && !(*c.overlap >= 0 && *c.overlap <= 0.95)) fail(fmt::format("'overlap' is {} (expected [0, 0.95])", *c.overlap));
  if (c.fold_average != "logits" && c.fold_average != "probabilities")
    fail("'fold_average' is '" + c.fold_average + "' (expected logits or probabilities)");
  if (c.dimensions != 2 && c.dimensions != 3) fail(fmt::format("'dimensions' is {} (expected 2 or 3)", c.dimensions));
  if (c.channels.empty()) fail("'channels' is empty: the model needs at least one input channel");
  if (c.spacing.size() != std::size_t(c.dimensions))
    fail(fmt::format("'spacing' has {} values for a {}D model", c.spacing.size(), c.dimensions));
  for (double s : c.spacing)
    if (!(s > 0)) fail("'spacing' values must be positive (mm)");
  if (c.patch_size.size() != std::size_t(c.dimensions))
    fail(fmt::format("'patch_size' has {} values for a {}D model", c.patch_size.size(), c.dimensions));
  for (int p : c.patch_size)
    if (p < 1) fail("'patch_size' values must be positive");
  if (c.microns_per_pixel && !(*c.microns_per_pixel > 0))
    fail(fmt::format("'microns_per_pixel' is {} (expected a positive resolution)", *c.microns_per_pixel));
  if (c.labels.empty()) fail("'labels' is empty");
  std::set<int> values;
  bool background = false;
  for (const auto& l : c.labels) {
    if (l.value < 0 || l.value > 65535) fail(fmt::format("label '{}' has value {} (expected 0..65535)", l.name, l.value));
    if (!values.insert(l.value).second) fail(fmt::format("label value {} appears twice", l.value));
    background |= l.value == 0;
    for (int v : l.color)
      if (v < 0 || v > 255) fail(fmt::format("label '{}' has a colour component {} outside 0..255", l.name, v));
  }
  if (!background) fail("'labels' has no background (value 0)");
  for (const auto& ch : c.channels)
    if (ch.normalization.std <= 0) fail("channel '" + ch.name + "': normalization std must be positive");
  if ((c.format == "native-unet" || c.format == "nnunet") && !c.unet.is_object())
    fail("format " + c.format + " needs a 'unet' architecture object");
  for (const auto& r : c.regions) {
    if (r.value <= 0 || !values.count(r.value))
      fail(fmt::format("region value {} is not a foreground label of the card", r.value));
  }
}

}  // namespace

int ModelCard::num_classes() const {
  int m = 0;
  for (const auto& l : labels) m = std::max(m, l.value);
  return m + 1;
}

int ModelCard::output_channels() const { return regions.empty() ? num_classes() : int(regions.size()); }

std::array<int, 3> ModelCard::tensor_order() const {
  // tensor_axes lists D H W; memory order is W H D.
  std::array<int, 3> order{0, 1, 2};
  if (tensor_axes.size() == 3)
    for (int a = 0; a < 3; ++a) order[std::size_t(a)] = tensor_axes[std::size_t(2 - a)] - 'x';
  return order;
}

std::array<std::array<double, 3>, 3> orientation_vectors(const std::string& code) {
  if (code.size() != 3) throw Error("orientation '" + code + "' is not a 3-letter code such as LPS or RAS");
  std::array<std::array<double, 3>, 3> v{};
  bool used[3] = {false, false, false};
  for (std::size_t a = 0; a < 3; ++a) {
    // LPS: +x towards the patient's left, +y posterior, +z superior.
    int world = -1;
    double sign = 1;
    switch (code[a]) {
      case 'L': world = 0; break;
      case 'R': world = 0, sign = -1; break;
      case 'P': world = 1; break;
      case 'A': world = 1, sign = -1; break;
      case 'S': world = 2; break;
      case 'I': world = 2, sign = -1; break;
      default: throw Error("orientation '" + code + "': '" + std::string(1, code[a]) + "' is not one of L R P A S I");
    }
    if (used[world]) throw Error("orientation '" + code + "' names one direction twice");
    used[world] = true;
    v[a][std::size_t(world)] = sign;
  }
  return v;
}

const Label* ModelCard::find_label(const std::string& label_name) const {
  for (const auto& l : labels)
    if (l.name == label_name) return &l;
  return nullptr;
}

json to_json(const ModelCard& c) {
  json channels = json::array();
  for (const auto& ch : c.channels) channels.push_back({{"name", ch.name}, {"normalization", normalization_json(ch.normalization)}});
  json labels = json::array();
  for (const auto& l : c.labels) {
    json lj = {{"value", l.value}, {"name", l.name}, {"color", l.color}};
    if (l.category) lj["category"] = code_json(*l.category);
    if (l.type) lj["type"] = code_json(*l.type);
    labels.push_back(lj);
  }
  json j = {{"name", c.name},
            {"version", c.version},
            {"description", c.description},
            {"format", c.format},
            {"weights", c.weights.string()},
            {"sha256", c.sha256},
            {"dimensions", c.dimensions},
            {"channels", channels},
            {"spacing", c.spacing},
            {"patch_size", c.patch_size},
            {"labels", labels},
            {"gradcam_layer", c.gradcam_layer},
            {"returns_activation", c.returns_activation}};
  if (c.microns_per_pixel) j["microns_per_pixel"] = *c.microns_per_pixel;
  // The array convention is written only when it is not the default, so older readers and cards
  // stay as they were.
  if (c.orientation != "LPS") j["orientation"] = c.orientation;
  if (c.reorient != "grid") j["reorient"] = c.reorient;
  if (c.tensor_axes != "zyx") j["tensor_axes"] = c.tensor_axes;
  if (c.mirror_axes != "xyz") j["mirror_axes"] = c.mirror_axes;
  if (c.activation != "softmax") j["activation"] = c.activation;
  if (!c.regions.empty()) {
    json regions = json::array();
    for (const auto& r : c.regions) regions.push_back({{"labels", r.labels}, {"value", r.value}});
    j["regions"] = regions;
  }
  if (!c.folds.empty()) {
    json folds = json::array();
    for (const auto& f : c.folds) folds.push_back({{"weights", f.weights.string()}, {"sha256", f.sha256}});
    j["folds"] = folds;
    j["fold_average"] = c.fold_average;
  }
  if (c.window_weights != "gaussian") j["window_weights"] = c.window_weights;
  if (c.sigma_scale != 0.125) j["sigma_scale"] = c.sigma_scale;
  if (c.overlap) j["overlap"] = *c.overlap;
  if (c.crop_foreground_margin) j["crop_foreground_margin"] = *c.crop_foreground_margin;
  if (!c.unet.is_null()) j["unet"] = c.unet;
  if (!c.provenance.is_null()) j["provenance"] = c.provenance;
  if (c.training_profile) j["training_profile"] = to_json(*c.training_profile);
  if (const json t = to_json(c.review_thresholds); t.size() > (t.contains("source") ? 1u : 0u)) {
    j["review_thresholds"] = t;
    if (j["review_thresholds"].value("source", "") == "card") j["review_thresholds"].erase("source");
  }
  return j;
}

std::vector<Label> labels_from_json(const json& labels, bool require_names) {
  if (!labels.is_array()) throw Error("'labels' is not an array");
  std::vector<Label> out;
  for (const auto& lj : labels) {
    Label l;
    if (!lj.is_object() || !lj.contains("value") || !lj["value"].is_number_integer())
      throw Error("a label without an integer \"value\"");
    l.value = lj["value"].get<int>();
    if (l.value < 0 || l.value > 65535) throw Error(fmt::format("label value {} is outside 0..65535", l.value));
    if (require_names || lj.contains("name")) l.name = lj.at("name").get<std::string>();
    if (lj.contains("color")) {
      const auto& c = lj["color"];
      if (!c.is_array() || c.size() != 3 || !std::all_of(c.begin(), c.end(), [](const json& v) { return v.is_number(); }))
        throw Error(fmt::format("label {}: colour must be [r, g, b] 0..255", l.value));
      for (std::size_t i = 0; i < 3; ++i) l.color[i] = int(std::lround(c[i].get<double>()));
      l.color_given = true;
    }
    if (lj.contains("category")) l.category = code_from(lj["category"]);
    if (lj.contains("type")) l.type = code_from(lj["type"]);
    out.push_back(l);
  }
  return out;
}

std::vector<Label> read_card_labels(const fs::path& card_path) {
  std::ifstream in(card_path);
  if (!in) throw Error(card_path.string() + ": cannot read the model card");
  json j;
  try {
    in >> j;
  } catch (const json::exception& e) {
    throw Error(card_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("labels") || !j["labels"].is_array())
    throw Error(card_path.string() + ": no \"labels\" array (expected a model card with label values, names and colours)");
  try {
    return labels_from_json(j["labels"], false);
  } catch (const json::exception& e) {
    throw Error(card_path.string() + ": " + e.what());
  } catch (const Error& e) {
    throw Error(card_path.string() + ": " + e.what());
  }
}

ModelCard card_from_json(const json& j, const fs::path& card_path) {
  const std::string where = card_path.empty() ? "model card" : "model card " + card_path.string();
  ModelCard c;
  try {
    if (!j.is_object()) throw Error("not a JSON object");
    c.name = j.at("name").get<std::string>();
    c.version = j.value("version", std::string());
    c.description = j.value("description", std::string());
    c.format = j.value("format", std::string("torchscript"));
    c.weights = j.at("weights").get<std::string>();
    if (c.weights.is_relative() && !card_path.empty()) c.weights = fs::absolute(card_path).parent_path() / c.weights;
    c.sha256 = j.value("sha256", std::string());
    c.dimensions = j.at("dimensions").get<int>();
    for (const auto& cj : j.at("channels")) {
      InputChannel ch;
      ch.name = cj.value("name", std::string());
      if (cj.contains("normalization")) {
        try {
          ch.normalization = normalization_from(cj["normalization"]);
        } catch (const Error& e) {
          throw Error(fmt::format("channel '{}': {}", ch.name, e.what()));
        }
      }
      c.channels.push_back(ch);
    }
    c.spacing = j.at("spacing").get<std::vector<double>>();
    c.patch_size = j.at("patch_size").get<std::vector<int>>();
    if (j.contains("microns_per_pixel") && !j["microns_per_pixel"].is_null())
      c.microns_per_pixel = j["microns_per_pixel"].get<double>();
    c.labels = labels_from_json(j.at("labels"), true);
    c.orientation = j.value("orientation", std::string("LPS"));
    if (c.orientation != "stored")
      std::transform(c.orientation.begin(), c.orientation.end(), c.orientation.begin(),
                     [](unsigned char ch) { return char(std::toupper(ch)); });
    c.reorient = j.value("reorient", std::string(c.orientation == "stored" ? "closest" : "grid"));
    c.tensor_axes = j.value("tensor_axes", std::string("zyx"));
    c.mirror_axes = j.value("mirror_axes", std::string("xyz"));
    c.activation = j.value("activation", std::string("softmax"));
    if (j.contains("regions"))
      for (const auto& r : j["regions"]) c.regions.push_back({r.at("labels").get<std::vector<int>>(), r.at("value").get<int>()});
    if (j.contains("folds"))
      for (const auto& f : j["folds"]) {
        Fold fold{f.at("weights").get<std::string>(), f.value("sha256", std::string())};
        if (fold.weights.is_relative() && !card_path.empty()) fold.weights = fs::absolute(card_path).parent_path() / fold.weights;
        c.folds.push_back(fold);
      }
    c.fold_average = j.value("fold_average", std::string("probabilities"));
    c.window_weights = j.value("window_weights", std::string("gaussian"));
    c.sigma_scale = j.value("sigma_scale", 0.125);
    if (j.contains("overlap") && !j["overlap"].is_null()) c.overlap = j["overlap"].get<double>();
    if (j.contains("crop_foreground_margin") && !j["crop_foreground_margin"].is_null())
      c.crop_foreground_margin = j["crop_foreground_margin"].get<int>();
    c.gradcam_layer = j.value("gradcam_layer", std::string());
    c.returns_activation = j.value("returns_activation", false);
    if (j.contains("unet")) c.unet = j["unet"];
    if (j.contains("provenance")) c.provenance = j["provenance"];
    if (j.contains("training_profile") && !j["training_profile"].is_null())
      c.training_profile = training_profile_from_json(j["training_profile"]);
    if (j.contains("review_thresholds") && !j["review_thresholds"].is_null())
      c.review_thresholds = review_thresholds_from_json(j["review_thresholds"]);
    c.path = card_path;
    validate(c);
  } catch (const json::exception& e) {
    throw Error(where + ": " + e.what());
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  return c;
}

ModelCard load_card(const fs::path& card_path, bool verify_hash) {
  std::ifstream f(card_path);
  if (!f) throw Error("model card " + card_path.string() + ": cannot open");
  json j;
  try {
    j = json::parse(f);
  } catch (const json::exception& e) {
    throw Error("model card " + card_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  ModelCard c = card_from_json(j, card_path);
  // The main weights and every fold's: present, and (when asked) the files the card was made for.
  std::vector<std::pair<fs::path, std::string>> files = {{c.weights, c.sha256}};
  for (const auto& fold : c.folds) files.emplace_back(fold.weights, fold.sha256);
  for (const auto& [weights, expected] : files) {
    if (!fs::is_regular_file(weights))
      throw Error("model card " + card_path.string() + ": weights file " + weights.string() + " not found");
    if (!verify_hash) continue;
    if (expected.empty())
      throw Error("model card " + card_path.string() + ": no 'sha256' for " + weights.filename().string() +
                  "; add the file's sha256");
    const std::string actual = sha256_file(weights);
    if (actual != expected)
      throw Error(fmt::format("model card {}: sha256 mismatch for {} (card {}, file {}): the weights "
                              "changed or belong to another card",
                              card_path.string(), weights.string(), expected, actual));
  }
  return c;
}

void save_card(ModelCard card, const fs::path& card_path) {
  const fs::path folder = fs::absolute(card_path).parent_path();
  if (card.sha256.empty()) card.sha256 = sha256_file(card.weights);
  for (auto& fold : card.folds)
    if (fold.sha256.empty()) fold.sha256 = sha256_file(fold.weights);
  validate(card);
  json j = to_json(card);
  const auto relative = [&](const fs::path& p) { return (p.is_absolute() ? p : fs::absolute(p)).lexically_relative(folder).string(); };
  j["weights"] = relative(card.weights);
  for (std::size_t i = 0; i < card.folds.size(); ++i) j["folds"][i]["weights"] = relative(card.folds[i].weights);
  write_atomically(card_path, [&](const fs::path& tmp) {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    if (!f.flush()) throw Error("cannot write model card " + card_path.string());
  });
}

std::string sha256_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("cannot read " + path.string());
  detail::Sha256 h;
  std::vector<char> buffer(1 << 20);
  while (f) {
    f.read(buffer.data(), std::streamsize(buffer.size()));
    h.update(buffer.data(), std::size_t(f.gcount()));
  }
  return h.hex();
}

}  // namespace sagitta

// Model folders of other tools as cards: MONAI bundles (configs/metadata.json + inference.json or .yaml +
// models/model.ts). The bundle's config is data, not code: only the transforms and settings listed
// in model_sources.h are understood, "@key" references are followed, and any "$" expression or
// unknown transform is refused by name, never evaluated.
#include "sagitta/segmentation/model_sources.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <regex>
#include <set>

#include <yaml-cpp/yaml.h>

#include "model_conventions.h"
#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json(const fs::path& path, const std::string& what) {
  std::ifstream f(path);
  if (!f) throw SegmentationError(fmt::format("{}: no {} ({})", path.parent_path().parent_path().string(), what, path.string()));
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    throw SegmentationError(fmt::format("{}: not valid JSON ({})", path.string(), e.what()));
  }
}

// A bundle config with "@key" references (whole-string, or "$@key" with nothing else) followed.
struct Config {
  json root;
  fs::path file;
  const json& resolve(const json& v, int depth = 0) const {
    if (depth > 16) throw SegmentationError(file.string() + ": references nest too deeply");
    if (!v.is_string()) return v;
    std::string s = v.get<std::string>();
    if (s.rfind("$@", 0) == 0) s = s.substr(1);
    if (s.size() < 2 || s[0] != '@') return v;
    std::string key = s.substr(1);
    // "@a#b" addresses b inside a (MONAI's id separator).
    const json* node = &root;
    std::size_t start = 0;
    while (true) {
      const std::size_t hash = key.find('#', start);
      const std::string part = key.substr(start, hash == std::string::npos ? std::string::npos : hash - start);
      if (node->is_object() && node->contains(part)) node = &(*node)[part];
      else if (node->is_array() && !part.empty() && part.find_first_not_of("0123456789") == std::string::npos &&
               std::stoul(part) < node->size())
        node = &(*node)[std::stoul(part)];
      else throw SegmentationError(fmt::format("{}: reference {} names nothing in the config", file.string(), s));
      if (hash == std::string::npos) break;
      start = hash + 1;
    }
    return resolve(*node, depth + 1);
  }
};

// "monai.transforms.Spacingd" -> "Spacing"; dictionary and array transforms are the same here.
std::string transform_name(const std::string& target) {
  std::string n = target.substr(target.rfind('.') == std::string::npos ? 0 : target.rfind('.') + 1);
  static const std::set<std::string> keep_d = {"Dataset", "Compose"};
  if (n.size() > 1 && n.back() == 'd' && !keep_d.count(n)) n.pop_back();
  return n;
}

bool applies_to(const Config& cfg, const json& t, const std::string& key) {
  if (!t.contains("keys")) return true;
  const json& k = cfg.resolve(t["keys"]);
  if (k.is_string()) return k.get<std::string>() == key;
  if (k.is_array())
    for (const auto& e : k)
      if (e.is_string() && e.get<std::string>() == key) return true;
  return false;
}

// t[key] with references followed; a Python expression is refused, never evaluated.
const json& value(const Config& cfg, const json& t, const char* key) {
  const json& v = cfg.resolve(t.at(key));
  if (v.is_string() && !v.get<std::string>().empty() && v.get<std::string>()[0] == '$')
    throw SegmentationError(fmt::format("{}: '{}' is a Python expression ({}); Sagitta does not evaluate code",
                                        cfg.file.string(), key, v.get<std::string>()));
  return v;
}

template <typename T>
T get(const Config& cfg, const json& t, const char* key, T fallback) {
  if (!t.contains(key)) return fallback;
  const json& v = value(cfg, t, key);
  try {
    return v.get<T>();
  } catch (const json::exception&) {
    throw SegmentationError(fmt::format("{}: '{}' has an unexpected value {}", cfg.file.string(), key, v.dump()));
  }
}

// The transform list of a Compose (or a plain list).
std::vector<json> transforms_of(const Config& cfg, const json& node) {
  const json& n = cfg.resolve(node);
  const json& list = n.is_object() && n.contains("transforms") ? cfg.resolve(n["transforms"]) : n;
  if (!list.is_array()) throw SegmentationError(cfg.file.string() + ": a transform chain is not a list of transforms");
  std::vector<json> out;
  for (const auto& t : list) out.push_back(cfg.resolve(t));
  return out;
}

// Transforms that change no values the network or the labels see here.
const std::set<std::string> kNeutral = {
    "LoadImage", "EnsureChannelFirst", "AddChannel", "EnsureType", "ToTensor", "ToNumpy", "CastToType",
    "Invert", "SaveImage", "CopyItems", "DeleteItems", "SqueezeDim", "ToDevice", "Identity"};

void read_preprocessing(const Config& cfg, const std::vector<json>& chain, const std::string& key, ModelCard& card,
                        std::vector<std::string>& unknown) {
  bool normalised = false;
  card.orientation = "stored";
  card.reorient = "closest";
  for (const auto& t : chain) {
    if (!t.is_object() || !t.contains("_target_")) {
      unknown.push_back(t.dump().substr(0, 60));
      continue;
    }
    const std::string name = transform_name(cfg.resolve(t["_target_"]).get<std::string>());
    if (!applies_to(cfg, t, key) || kNeutral.count(name)) {
      if (name == "LoadImage" && t.contains("reader") && applies_to(cfg, t, key)) {
        const std::string reader = get<std::string>(cfg, t, "reader", "");
        if (reader != "NibabelReader" && reader != "ITKReader" && reader != "PydicomReader" && reader != "NumpyReader")
          unknown.push_back("LoadImage(reader=" + reader + ")");
      }
      continue;
    }
    Normalization n;
    if (name == "Orientation") {
      card.orientation = get<std::string>(cfg, t, "axcodes", "RAS");
      for (auto& ch : card.orientation) ch = char(std::toupper(static_cast<unsigned char>(ch)));
      card.reorient = "closest";
      continue;
    }
    if (name == "Spacing") {
      const json& pixdim = value(cfg, t, "pixdim");
      std::vector<double> sp = pixdim.is_number() ? std::vector<double>(3, pixdim.get<double>()) : pixdim.get<std::vector<double>>();
      if (sp.size() != 3 || std::any_of(sp.begin(), sp.end(), [](double v) { return !(v > 0); }))
        throw SegmentationError(fmt::format("{}: Spacing pixdim {} is not three positive spacings (non-positive means "
                                            "'keep', which Sagitta does not support yet)",
                                            cfg.file.string(), pixdim.dump()));
      card.spacing = sp;
      const json& mode = t.contains("mode") ? cfg.resolve(t["mode"]) : json("bilinear");
      const std::string m = mode.is_array() ? mode.at(0).get<std::string>() : mode.get<std::string>();
      if (m != "bilinear" && m != "linear") unknown.push_back("Spacing(mode=" + m + ")");
      continue;
    }
    if (name == "ScaleIntensityRange") {
      n.scheme = Normalization::Scheme::Range;
      n.a_min = get<double>(cfg, t, "a_min", 0), n.a_max = get<double>(cfg, t, "a_max", 1);
      n.b_min = get<double>(cfg, t, "b_min", 0), n.b_max = get<double>(cfg, t, "b_max", 1);
      n.clip = get<bool>(cfg, t, "clip", false);
    } else if (name == "ScaleIntensityRangePercentiles") {
      n.scheme = Normalization::Scheme::Percentile;
      n.mask = Normalization::Mask::All;
      n.lower = get<double>(cfg, t, "lower", 0), n.upper = get<double>(cfg, t, "upper", 100);
      n.b_min = get<double>(cfg, t, "b_min", 0), n.b_max = get<double>(cfg, t, "b_max", 1);
      n.clip = get<bool>(cfg, t, "clip", false);
      if (get<bool>(cfg, t, "relative", false)) unknown.push_back("ScaleIntensityRangePercentiles(relative=true)");
    } else if (name == "NormalizeIntensity") {
      if (t.contains("subtrahend") || t.contains("divisor")) {
        n.scheme = Normalization::Scheme::Fixed;
        n.mean = get<double>(cfg, t, "subtrahend", 0), n.std = get<double>(cfg, t, "divisor", 1);
      } else {
        n.scheme = Normalization::Scheme::ZScore;
        n.mask = get<bool>(cfg, t, "nonzero", false) ? Normalization::Mask::NonZero : Normalization::Mask::All;
      }
    } else if (name == "CropForeground") {
      card.crop_foreground_margin = get<int>(cfg, t, "margin", 0);
      if (t.contains("select_fn")) unknown.push_back("CropForeground(select_fn)");
      continue;
    } else {
      unknown.push_back(name);
      continue;
    }
    if (normalised) unknown.push_back(name + " (a second intensity transform)");
    normalised = true;
    for (auto& ch : card.channels) ch.normalization = n;
  }
  if (!normalised)
    for (auto& ch : card.channels) ch.normalization.scheme = Normalization::Scheme::None;
}

void read_inferer(const Config& cfg, const json& inferer, ModelCard& card, std::vector<std::string>& unknown) {
  const json& t = cfg.resolve(inferer);
  const std::string name = transform_name(cfg.resolve(t.at("_target_")).get<std::string>());
  if (name != "SlidingWindowInferer") {
    unknown.push_back("inferer " + name);
    return;
  }
  const json& roi = value(cfg, t, "roi_size");
  card.patch_size = roi.is_number() ? std::vector<int>(std::size_t(card.dimensions), roi.get<int>()) : roi.get<std::vector<int>>();
  card.overlap = get<double>(cfg, t, "overlap", 0.25);
  card.window_weights = get<std::string>(cfg, t, "mode", "constant");
  card.sigma_scale = get<double>(cfg, t, "sigma_scale", 0.125);
  if (card.window_weights != "constant" && card.window_weights != "gaussian")
    unknown.push_back("SlidingWindowInferer(mode=" + card.window_weights + ")");
  if (t.contains("padding_mode") && get<std::string>(cfg, t, "padding_mode", "constant") != "constant")
    unknown.push_back("SlidingWindowInferer(padding_mode)");
}

// `inverted_first`: Invertd runs before AsDiscrete, so MONAI resamples the probabilities back to
// the source grid (its Spacing mode) and takes the argmax there.
void read_postprocessing(const Config& cfg, const std::vector<json>& chain, const std::string& key, ModelCard& card,
                         std::vector<std::string>& unknown, bool& inverted_first) {
  bool sigmoid = false, discrete = false;
  inverted_first = false;
  for (const auto& t : chain) {
    if (!t.is_object() || !t.contains("_target_")) continue;
    const std::string name = transform_name(cfg.resolve(t["_target_"]).get<std::string>());
    if (name == "Invert" && applies_to(cfg, t, key) && !discrete) inverted_first = true;
    if (!applies_to(cfg, t, key) || kNeutral.count(name)) continue;
    if (name == "Activations") {
      sigmoid = get<bool>(cfg, t, "sigmoid", false);
    } else if (name == "AsDiscrete") {
      discrete = get<bool>(cfg, t, "argmax", false) || t.contains("threshold") || t.contains("threshold_values");
    } else if (name == "KeepLargestConnectedComponent" && discrete) {
      // Applied by segment() to the labels (every foreground label, or applied_labels).
      json labels = json::array();
      if (t.contains("applied_labels")) {
        const json a = cfg.resolve(t["applied_labels"]);
        labels = a.is_array() ? a : json::array({a});
      }
      card.provenance["keep_largest_component"] = labels;
    } else {
      unknown.push_back(name);
    }
  }
  if (!discrete) unknown.push_back("postprocessing without AsDiscrete(argmax) (no labels)");
  if (sigmoid) {
    card.activation = "sigmoid";
    for (const auto& l : card.labels)
      if (l.value > 0) card.regions.push_back({{l.value}, l.value});
  }
}

// A plain YAML scalar as PyYAML's safe_load resolves it (YAML 1.1; MONAI reads its configs so):
// null, booleans (yes/no/on/off too), integers (decimal, 0o-less octal, 0x, 0b), floats that have
// a dot (or .inf/.nan); anything else, "1e3" included, a string.
json plain_scalar(const std::string& v) {
  static const std::regex null_re("~|null|Null|NULL|");
  static const std::regex true_re("yes|Yes|YES|true|True|TRUE|on|On|ON");
  static const std::regex false_re("no|No|NO|false|False|FALSE|off|Off|OFF");
  static const std::regex dec_re("[-+]?(0|[1-9][0-9_]*)"), oct_re("[-+]?0[0-7_]+");
  static const std::regex hex_re("[-+]?0x[0-9a-fA-F_]+"), bin_re("[-+]?0b[01_]+");
  static const std::regex float_re("[-+]?[0-9][0-9_]*\\.[0-9_]*([eE][-+][0-9]+)?|\\.[0-9_]+([eE][-+][0-9]+)?");
  static const std::regex inf_re("[-+]?\\.(inf|Inf|INF)"), nan_re("\\.(nan|NaN|NAN)");
  if (std::regex_match(v, null_re)) return nullptr;
  if (std::regex_match(v, true_re)) return true;
  if (std::regex_match(v, false_re)) return false;
  std::string d;  // without underscores, sign kept
  for (char c : v)
    if (c != '_') d += c;
  const bool negative = !d.empty() && d[0] == '-';
  const std::string body = !d.empty() && (d[0] == '-' || d[0] == '+') ? d.substr(1) : d;
  try {
    const auto integer = [&](const std::string& digits, int base) {
      const long long x = std::stoll(digits, nullptr, base);
      return json(negative ? -x : x);
    };
    if (std::regex_match(v, dec_re)) return integer(body, 10);
    if (std::regex_match(v, hex_re)) return integer(body.substr(2), 16);
    if (std::regex_match(v, bin_re)) return integer(body.substr(2), 2);
    if (std::regex_match(v, oct_re)) return integer(body, 8);
    if (std::regex_match(v, float_re)) return std::stod(d);
  } catch (const std::out_of_range&) {
    return v;  // beyond 64 bits: kept as written
  }
  if (std::regex_match(v, inf_re)) return negative ? -INFINITY : INFINITY;
  if (std::regex_match(v, nan_re)) return NAN;
  return v;
}

json yaml_to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& e : n) a.push_back(yaml_to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) o[kv.first.Scalar()] = yaml_to_json(kv.second);
      return o;
    }
    case YAML::NodeType::Scalar:
      return n.Tag() == "!" ? json(n.Scalar()) : plain_scalar(n.Scalar());  // "!": quoted, always a string
    default:
      return nullptr;
  }
}

// configs/inference.json, else inference.yaml / inference.yml (the same content in YAML).
json read_inference_config(const fs::path& configs, fs::path& file) {
  file = configs / "inference.json";
  if (fs::exists(file)) return read_json(file, "configs/inference.json");
  for (const char* name : {"inference.yaml", "inference.yml"}) {
    file = configs / name;
    if (!fs::exists(file)) continue;
    try {
      return yaml_to_json(YAML::LoadFile(file.string()));
    } catch (const YAML::Exception& e) {
      throw SegmentationError(fmt::format("{}: not valid YAML ({})", file.string(), e.what()));
    }
  }
  file = configs / "inference.json";
  return read_json(file, "configs/inference.json");  // names what is missing
}

}  // namespace

bool is_monai_bundle(const fs::path& folder) { return fs::is_regular_file(folder / "configs" / "metadata.json"); }

ModelCard card_from_monai_bundle(const fs::path& folder) {
  const fs::path configs = folder / "configs";
  const json meta = read_json(configs / "metadata.json", "configs/metadata.json");
  Config cfg;
  cfg.root = read_inference_config(configs, cfg.file);
  ModelCard card;
  try {
    card.name = meta.value("name", folder.filename().string());
    card.version = meta.value("version", std::string());
    card.description = meta.value("description", std::string());
    card.format = "torchscript";
    card.weights = fs::absolute(folder / "models" / "model.ts");
    if (!fs::is_regular_file(card.weights))
      throw SegmentationError(folder.string() + ": no models/model.ts; export the bundle's network to TorchScript "
                                                "(python -m monai.bundle ckpt_export)");
    card.tensor_axes = "xyz";  // MONAI's tensors are C x i x j x k
    const json& fmt_ = meta.at("network_data_format");
    const auto& inputs = fmt_.at("inputs");
    if (inputs.size() != 1) throw SegmentationError(folder.string() + ": bundles with several inputs are not supported");
    const std::string key = inputs.begin().key();
    const json& in = inputs.begin().value();
    const int channels = in.value("num_channels", 1);
    for (int c = 0; c < channels; ++c) {
      InputChannel ch;
      ch.name = in.contains("channel_def") ? in["channel_def"].value(std::to_string(c), in.value("modality", "image"))
                                           : in.value("modality", std::string("image"));
      card.channels.push_back(ch);
    }
    const json& out = fmt_.at("outputs").begin().value();
    const json& defs = out.at("channel_def");
    card.labels.push_back({0, "background", {0, 0, 0}, {}, {}});
    for (auto it = defs.begin(); it != defs.end(); ++it) {
      const int value = std::stoi(it.key());
      if (value == 0) {
        card.labels[0].name = it.value().get<std::string>();
        continue;
      }
      card.labels.push_back({value, it.value().get<std::string>(), {128, 128, 128}, {}, {}});
    }
    const std::vector<int> shape = in.value("spatial_shape", std::vector<int>{});
    card.dimensions = cfg.root.contains("network_def") && cfg.root["network_def"].contains("spatial_dims")
                          ? get<int>(cfg, cfg.root["network_def"], "spatial_dims", 3)
                          : (shape.size() == 2 ? 2 : 3);
    if (card.dimensions != 3) throw SegmentationError(folder.string() + ": only 3D bundles are supported");
    std::vector<std::string> unknown;
    if (!cfg.root.contains("preprocessing")) throw SegmentationError(cfg.file.string() + ": no 'preprocessing'");
    read_preprocessing(cfg, transforms_of(cfg, cfg.root["preprocessing"]), key, card, unknown);
    if (!cfg.root.contains("inferer")) throw SegmentationError(cfg.file.string() + ": no 'inferer'");
    read_inferer(cfg, cfg.root["inferer"], card, unknown);
    bool inverted_first = false;
    if (cfg.root.contains("postprocessing"))
      read_postprocessing(cfg, transforms_of(cfg, cfg.root["postprocessing"]), "pred", card, unknown, inverted_first);
    else unknown.push_back("no postprocessing (no labels)");
    if (card.spacing.empty()) unknown.push_back("no Spacing transform (the model's spacing is unknown)");
    if (!unknown.empty()) {
      std::string list;
      for (const auto& u : unknown) list += (list.empty() ? "" : ", ") + u;
      throw SegmentationError(fmt::format("{}: not understood: {}", folder.string(), list));
    }
    const json largest = card.provenance.is_object() ? card.provenance.value("keep_largest_component", json()) : json();
    card.provenance = {{"source", detail::kMonaiSource}, {"bundle", folder.filename().string()}};
    if (!largest.is_null()) card.provenance["keep_largest_component"] = largest;
    if (inverted_first && card.activation == "softmax") card.provenance["labels"] = detail::kLabelsFromSourceProbabilities;
    card.sha256 = sha256_file(card.weights);
    json j = to_json(card);
    return card_from_json(j, {});  // the card's own validation
  } catch (const json::exception& e) {
    throw SegmentationError(fmt::format("{}: unexpected bundle content ({})", folder.string(), e.what()));
  } catch (const SegmentationError&) {
    throw;
  } catch (const Error& e) {
    throw SegmentationError(fmt::format("{}: {}", folder.string(), e.what()));
  }
}

ModelCard open_model(const fs::path& path, const ModelSourceOptions& options) {
  if (fs::is_directory(path)) {
    if (is_monai_bundle(path)) return card_from_monai_bundle(path);
    if (is_nnunet_results_folder(path)) return card_from_nnunet(path, options);
    if (fs::is_regular_file(path / "model.json")) return load_card(path / "model.json", options.verify_hash);
    throw SegmentationError(path.string() + ": not a model folder (expected model.json, a MONAI bundle's "
                                            "configs/metadata.json, or an nnU-Net results folder's plans.json and "
                                            "dataset.json)");
  }
  return load_card(path, options.verify_hash);
}

namespace detail {

bool runs_as_nnunet(const ModelCard& card) {
  return card.format == "nnunet" && card.provenance.is_object() && card.provenance.value("source", "") == kNNUNetSource;
}

bool from_monai_bundle(const ModelCard& card) {
  return card.provenance.is_object() && card.provenance.value("source", "") == kMonaiSource;
}

bool labels_from_source_probabilities(const ModelCard& card) {
  return from_monai_bundle(card) && card.provenance.value("labels", "") == kLabelsFromSourceProbabilities;
}

}  // namespace detail
}  // namespace sagitta::segmentation

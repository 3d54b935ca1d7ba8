// Model cards: JSON <-> ModelCard, validation, and the weights' sha256.
#include "sagitta/core/model_card.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "sagitta/core/atomic_output.h"
#include "sagitta/core/error.h"
#include "sha256.h"

namespace sagitta {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* scheme_name(Normalization::Scheme s) {
  switch (s) {
    case Normalization::Scheme::CT: return "ct";
    case Normalization::Scheme::ZScore: return "zscore";
    case Normalization::Scheme::Fixed: return "fixed";
    case Normalization::Scheme::None: return "none";
  }
  return "none";
}

Normalization::Scheme parse_scheme(const std::string& s) {
  if (s == "ct") return Normalization::Scheme::CT;
  if (s == "zscore") return Normalization::Scheme::ZScore;
  if (s == "fixed") return Normalization::Scheme::Fixed;
  if (s == "none") return Normalization::Scheme::None;
  throw Error("unknown normalization scheme '" + s + "' (expected ct, zscore, fixed or none)");
}

json code_json(const Code& c) { return {{"value", c.value}, {"scheme", c.scheme}, {"meaning", c.meaning}}; }
Code code_from(const json& j) {
  return {j.at("value").get<std::string>(), j.at("scheme").get<std::string>(), j.value("meaning", std::string())};
}

// Throws when the card is inconsistent; `what` collects the first problem found.
void validate(const ModelCard& c) {
  auto fail = [](const std::string& m) { throw Error(m); };
  if (c.name.empty()) fail("'name' is empty");
  if (c.format != "torchscript" && c.format != "native-unet")
    fail("'format' is '" + c.format + "' (expected torchscript or native-unet)");
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
  if (c.format == "native-unet" && !c.unet.is_object()) fail("format native-unet needs a 'unet' architecture object");
}

}  // namespace

int ModelCard::num_classes() const {
  int m = 0;
  for (const auto& l : labels) m = std::max(m, l.value);
  return m + 1;
}

const Label* ModelCard::find_label(const std::string& label_name) const {
  for (const auto& l : labels)
    if (l.name == label_name) return &l;
  return nullptr;
}

json to_json(const ModelCard& c) {
  json channels = json::array();
  for (const auto& ch : c.channels) {
    json n = {{"scheme", scheme_name(ch.normalization.scheme)}};
    if (ch.normalization.scheme == Normalization::Scheme::CT)
      n["clip"] = {ch.normalization.clip_low, ch.normalization.clip_high};
    if (ch.normalization.scheme == Normalization::Scheme::CT || ch.normalization.scheme == Normalization::Scheme::Fixed) {
      n["mean"] = ch.normalization.mean;
      n["std"] = ch.normalization.std;
    }
    channels.push_back({{"name", ch.name}, {"normalization", n}});
  }
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
  if (!c.unet.is_null()) j["unet"] = c.unet;
  if (!c.provenance.is_null()) j["provenance"] = c.provenance;
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
        const auto& n = cj["normalization"];
        ch.normalization.scheme = parse_scheme(n.value("scheme", std::string("zscore")));
        if (n.contains("clip")) {
          ch.normalization.clip_low = n["clip"].at(0).get<double>();
          ch.normalization.clip_high = n["clip"].at(1).get<double>();
        }
        ch.normalization.mean = n.value("mean", 0.0);
        ch.normalization.std = n.value("std", 1.0);
      }
      c.channels.push_back(ch);
    }
    c.spacing = j.at("spacing").get<std::vector<double>>();
    c.patch_size = j.at("patch_size").get<std::vector<int>>();
    if (j.contains("microns_per_pixel") && !j["microns_per_pixel"].is_null())
      c.microns_per_pixel = j["microns_per_pixel"].get<double>();
    c.labels = labels_from_json(j.at("labels"), true);
    c.gradcam_layer = j.value("gradcam_layer", std::string());
    c.returns_activation = j.value("returns_activation", false);
    if (j.contains("unet")) c.unet = j["unet"];
    if (j.contains("provenance")) c.provenance = j["provenance"];
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
  if (!fs::is_regular_file(c.weights))
    throw Error("model card " + card_path.string() + ": weights file " + c.weights.string() + " not found");
  if (verify_hash) {
    if (c.sha256.empty())
      throw Error("model card " + card_path.string() + ": no 'sha256' for the weights; add the file's sha256");
    const std::string actual = sha256_file(c.weights);
    if (actual != c.sha256)
      throw Error(fmt::format("model card {}: sha256 mismatch for {} (card {}, file {}): the weights "
                                          "changed or belong to another card",
                                          card_path.string(), c.weights.string(), c.sha256, actual));
  }
  return c;
}

void save_card(ModelCard card, const fs::path& card_path) {
  const fs::path folder = fs::absolute(card_path).parent_path();
  if (card.sha256.empty()) card.sha256 = sha256_file(card.weights);
  validate(card);
  json j = to_json(card);
  const fs::path weights = card.weights.is_absolute() ? card.weights : fs::absolute(card.weights);
  j["weights"] = weights.lexically_relative(folder).string();
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

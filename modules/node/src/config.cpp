// The listener's configuration file and the series selection rules.
#include "sagitta/node/config.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <regex>

#include "sagitta/core/error.h"

namespace sagitta::node {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\0')) s.pop_back();
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  return s;
}

bool one_of(const std::vector<std::string>& allowed, const std::string& value) {
  if (allowed.empty()) return true;
  return std::any_of(allowed.begin(), allowed.end(), [&](const std::string& a) { return upper(a) == upper(value); });
}

std::string listed(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : "/") + s;
  return out;
}

[[noreturn]] void bad(const fs::path& file, const std::string& what) {
  throw sagitta::Error(fmt::format("{}: {}", file.string(), what));
}

// A string or a list of strings.
std::vector<std::string> strings(const json& j, const fs::path& file, const std::string& key) {
  if (j.is_string()) return {j.get<std::string>()};
  std::vector<std::string> out;
  if (!j.is_array()) bad(file, key + " must be a string or a list of strings");
  for (const auto& e : j) {
    if (!e.is_string()) bad(file, key + " must be a string or a list of strings");
    out.push_back(e.get<std::string>());
  }
  return out;
}

Rule read_rule(const json& j, const fs::path& file, std::size_t index) {
  const std::string where = fmt::format("rules[{}]", index);
  if (!j.is_object()) bad(file, where + " must be an object");
  static const std::vector<std::string> known{"name", "modality", "body_part", "series_description", "orientation",
                                              "slice_thickness_mm", "model", "outputs", "seg_type"};
  for (const auto& [k, v] : j.items())
    if (std::find(known.begin(), known.end(), k) == known.end()) bad(file, fmt::format("{}: unknown key '{}'", where, k));
  Rule r;
  r.name = j.value("name", fmt::format("rule{}", index + 1));
  // Part of folder names in the spool.
  if (r.name.empty() || r.name.size() > 64 || r.name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
    bad(file, fmt::format("{}.name '{}': use 1 to 64 letters, digits, _ or -", where, r.name));
  if (j.contains("modality")) r.modalities = strings(j["modality"], file, where + ".modality");
  if (j.contains("body_part")) r.body_parts = strings(j["body_part"], file, where + ".body_part");
  if (j.contains("orientation")) {
    r.orientations = strings(j["orientation"], file, where + ".orientation");
    for (const auto& o : r.orientations)
      if (o != "axial" && o != "sagittal" && o != "coronal")
        bad(file, fmt::format("{}.orientation '{}': use axial, sagittal or coronal", where, o));
  }
  if (j.contains("series_description")) {
    r.description_regex = j["series_description"].get<std::string>();
    try {
      std::regex(r.description_regex, std::regex::ECMAScript | std::regex::icase);
    } catch (const std::regex_error& e) {
      bad(file, fmt::format("{}.series_description '{}' is not a regular expression ({})", where, r.description_regex, e.what()));
    }
  }
  if (j.contains("slice_thickness_mm")) {
    const json& t = j["slice_thickness_mm"];
    if (!t.is_array() || t.size() != 2) bad(file, where + ".slice_thickness_mm must be [min, max] (null for open ends)");
    if (!t[0].is_null()) r.min_thickness_mm = t[0].get<double>();
    if (!t[1].is_null()) r.max_thickness_mm = t[1].get<double>();
  }
  if (!j.contains("model") || !j["model"].is_string()) bad(file, where + ".model (the model card's path) is required");
  r.model = j["model"].get<std::string>();
  if (r.model.is_relative()) r.model = fs::absolute(file).parent_path() / r.model;
  if (!fs::is_regular_file(r.model)) bad(file, fmt::format("{}.model: {} does not exist", where, r.model.string()));
  if (j.contains("outputs")) {
    r.seg = r.sr = r.rtstruct = false;
    for (const auto& o : strings(j["outputs"], file, where + ".outputs")) {
      if (o == "seg") r.seg = true;
      else if (o == "sr") r.sr = true;
      else if (o == "rtstruct") r.rtstruct = true;
      else bad(file, fmt::format("{}.outputs '{}': use seg, sr, rtstruct", where, o));
    }
    if (!r.seg && !r.sr && !r.rtstruct) bad(file, where + ".outputs is empty");
  }
  r.seg_type = j.value("seg_type", "binary");
  if (r.seg_type != "binary" && r.seg_type != "labelmap") bad(file, where + ".seg_type: use binary or labelmap");
  return r;
}

}  // namespace

std::string orientation_name(const double row[3], const double column[3]) {
  const double n[3] = {row[1] * column[2] - row[2] * column[1], row[2] * column[0] - row[0] * column[2],
                       row[0] * column[1] - row[1] * column[0]};
  const double ax = std::abs(n[0]), ay = std::abs(n[1]), az = std::abs(n[2]);
  if (ax >= ay && ax >= az) return "sagittal";  // normal along left-right
  if (ay >= az) return "coronal";               // normal along anterior-posterior
  return "axial";
}

SeriesFacts read_series_facts(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(folder))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
  std::sort(files.begin(), files.end());
  SeriesFacts f;
  f.instances = files.size();
  for (const auto& p : files) {
    DcmFileFormat file;
    if (file.loadFile(p.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect).bad()) continue;
    DcmDataset* ds = file.getDataset();
    auto text = [&](const DcmTagKey& tag) {
      OFString v;
      ds->findAndGetOFStringArray(tag, v);
      return trimmed(v.c_str());
    };
    f.series_uid = text(DCM_SeriesInstanceUID);
    f.modality = text(DCM_Modality);
    f.body_part = text(DCM_BodyPartExamined);
    f.description = text(DCM_SeriesDescription);
    f.patient_name = text(DCM_PatientName);
    f.patient_id = text(DCM_PatientID);
    Float64 thickness = 0;
    if (ds->findAndGetFloat64(DCM_SliceThickness, thickness).good()) f.slice_thickness_mm = thickness;
    double iop[6];
    bool have = true;
    for (unsigned long i = 0; i < 6 && have; ++i) have = ds->findAndGetFloat64(DCM_ImageOrientationPatient, iop[i], i).good();
    if (have) f.orientation = orientation_name(iop, iop + 3);
    return f;
  }
  throw sagitta::Error(fmt::format("{}: no readable DICOM file", folder.string()));
}

std::string mismatch(const Rule& r, const SeriesFacts& s) {
  if (!one_of(r.modalities, s.modality)) return fmt::format("modality {} is not {}", s.modality.empty() ? "(none)" : s.modality, listed(r.modalities));
  if (!one_of(r.body_parts, s.body_part))
    return fmt::format("body part {} is not {}", s.body_part.empty() ? "(none)" : s.body_part, listed(r.body_parts));
  if (!r.orientations.empty() && !one_of(r.orientations, s.orientation))
    return fmt::format("orientation {} is not {}", s.orientation.empty() ? "(unknown)" : s.orientation, listed(r.orientations));
  if (r.min_thickness_mm || r.max_thickness_mm) {
    if (!s.slice_thickness_mm) return "no slice thickness";
    const double t = *s.slice_thickness_mm;
    if ((r.min_thickness_mm && t < *r.min_thickness_mm) || (r.max_thickness_mm && t > *r.max_thickness_mm))
      return fmt::format("slice thickness {} mm is outside [{}, {}]", t, r.min_thickness_mm ? fmt::format("{}", *r.min_thickness_mm) : "-",
                         r.max_thickness_mm ? fmt::format("{}", *r.max_thickness_mm) : "-");
  }
  // The description is not logged (it may name the patient): only that it did not match.
  if (!r.description_regex.empty() &&
      !std::regex_search(s.description, std::regex(r.description_regex, std::regex::ECMAScript | std::regex::icase)))
    return "series description does not match";
  return "";
}

NodeConfig load_node_config(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw sagitta::Error(fmt::format("{}: cannot read the configuration", file.string()));
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    bad(file, fmt::format("not JSON ({})", e.what()));
  }
  if (!j.is_object()) bad(file, "must be a JSON object");
  static const std::vector<std::string> known{"ae_title", "port", "spool", "quiet_seconds", "concurrency", "threads",
                                              "retry", "destination", "rules", "keep_inputs"};
  for (const auto& [k, v] : j.items())
    if (std::find(known.begin(), known.end(), k) == known.end()) bad(file, fmt::format("unknown key '{}'", k));
  NodeConfig c;
  try {
    c.ae_title = j.value("ae_title", c.ae_title);
    c.port = j.value("port", c.port);
    if (!j.contains("spool")) bad(file, "spool (the node's folder) is required");
    c.spool = j["spool"].get<std::string>();
    if (c.spool.is_relative()) c.spool = fs::absolute(file).parent_path() / c.spool;
    c.quiet_seconds = j.value("quiet_seconds", c.quiet_seconds);
    c.concurrency = j.value("concurrency", c.concurrency);
    c.threads = j.value("threads", c.threads);
    c.keep_inputs = j.value("keep_inputs", c.keep_inputs);
    if (j.contains("retry")) {
      c.retry_initial_seconds = j["retry"].value("initial_seconds", c.retry_initial_seconds);
      c.retry_max_seconds = j["retry"].value("max_seconds", c.retry_max_seconds);
    }
    if (!j.contains("destination") || !j["destination"].is_object()) bad(file, "destination (where results go) is required");
    c.destination.type = j["destination"].value("type", "dimse");
    c.destination.settings = j["destination"];
  } catch (const json::exception& e) {
    bad(file, fmt::format("a value has the wrong type ({})", e.what()));
  }
  if (c.port <= 0 || c.port > 65535) bad(file, fmt::format("port {} is not a TCP port", c.port));
  if (c.quiet_seconds < 0) bad(file, "quiet_seconds must be >= 0");
  if (c.concurrency < 1 || c.concurrency > 64) bad(file, "concurrency must be 1 to 64");
  if (c.retry_initial_seconds <= 0 || c.retry_max_seconds < c.retry_initial_seconds)
    bad(file, "retry: need 0 < initial_seconds <= max_seconds");
  if (!j.contains("rules") || !j["rules"].is_array() || j["rules"].empty()) bad(file, "rules: a non-empty list is required");
  for (std::size_t i = 0; i < j["rules"].size(); ++i) {
    try {
      c.rules.push_back(read_rule(j["rules"][i], file, i));
    } catch (const json::exception& e) {
      bad(file, fmt::format("rules[{}]: a value has the wrong type ({})", i, e.what()));
    }
  }
  for (std::size_t i = 0; i < c.rules.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (c.rules[i].name == c.rules[k].name) bad(file, fmt::format("two rules are named '{}'", c.rules[i].name));
  return c;
}

}  // namespace sagitta::node

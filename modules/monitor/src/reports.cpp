// Reading batch folders into studies and their quantities (declarations: monitor.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>

#include "sagitta/monitor/monitor.h"

namespace sagitta::monitor {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void put(std::map<std::string, double>& out, const std::string& name, const json& v) {
  if (v.is_number() && std::isfinite(v.get<double>())) out[name] = v.get<double>();
}

// DICOM DA (YYYYMMDD) and TM (HHMMSS.frac, any prefix) as seconds since 1970, read as UTC (only
// the order matters); nullopt when the date is not a date.
std::optional<double> dicom_time(const std::string& date, const std::string& time) {
  if (date.size() != 8 || !std::all_of(date.begin(), date.end(), ::isdigit)) return std::nullopt;
  std::tm tm{};
  tm.tm_year = std::stoi(date.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(date.substr(4, 2)) - 1;
  tm.tm_mday = std::stoi(date.substr(6, 2));
  if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31) return std::nullopt;
  double seconds = 0;
  std::string t;
  for (char c : time) if (::isdigit(c) || c == '.') t += c;
  auto field = [&](std::size_t at) { return t.size() >= at + 2 && ::isdigit(t[at]) && ::isdigit(t[at + 1]) ? std::stoi(t.substr(at, 2)) : 0; };
  seconds = field(0) * 3600.0 + field(2) * 60.0 + field(4);
  return double(timegm(&tm)) + seconds;
}

double modification_time(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0;
  return double(st.st_mtim.tv_sec) + 1e-9 * double(st.st_mtim.tv_nsec);
}

Study read_study(const fs::path& report_path, const std::string& batch) {
  std::ifstream f(report_path);
  if (!f) throw MonitorError("cannot be read");
  json report;
  try {
    report = json::parse(f);
  } catch (const json::exception& e) {
    throw MonitorError(fmt::format("is not valid JSON ({})", e.what()));
  }
  if (!report.is_object() || !report.contains("labels") || !report["labels"].is_array())
    throw MonitorError("is not a `sagitta segment` report (no \"labels\" list)");
  Study s;
  s.report = report_path;
  s.batch = batch;
  s.id = report_path.parent_path().filename().string();
  try {
    if (report.contains("batch") && report["batch"].is_object() && report["batch"].contains("id") && report["batch"]["id"].is_string())
      s.id = report["batch"]["id"].get<std::string>();
    s.values = quantities(report);
    const json* study = nullptr;
    if (report.contains("inputs") && report["inputs"].is_array() && !report["inputs"].empty()) {
      const json& in = report["inputs"].front();
      if (in.is_object() && in.contains("stack") && in["stack"].is_object() && in["stack"].contains("study")) study = &in["stack"]["study"];
    }
    std::optional<double> t;
    if (study && study->is_object()) t = dicom_time(study->value("date", ""), study->value("time", ""));
    if (t) {
      s.time = *t;
      s.time_source = "study date";
    } else {
      s.time = modification_time(report_path);
      s.time_source = "report written";
    }
    if (report.contains("qa") && report["qa"].is_object() && report["qa"].contains("needs_review") && report["qa"]["needs_review"].is_boolean())
      s.needs_review = report["qa"]["needs_review"].get<bool>();
  } catch (const json::exception& e) {
    throw MonitorError(fmt::format("has an unexpected layout ({})", e.what()));
  }
  return s;
}

}  // namespace

std::map<std::string, double> quantities(const json& report) {
  std::map<std::string, double> out;
  for (const auto& l : report.at("labels")) {
    if (!l.is_object() || l.value("value", 0) == 0 || !l.contains("name") || !l["name"].is_string()) continue;
    if (l.contains("volume_ml")) put(out, "volume_ml/" + l["name"].get<std::string>(), l["volume_ml"]);
  }
  const json qa = report.value("qa", json::object());
  if (qa.is_object()) {
    if (qa.contains("structures") && qa["structures"].is_array())
      for (const auto& s : qa["structures"]) {
        if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) continue;
        const std::string name = s["name"].get<std::string>();
        if (s.contains("mean_probability")) put(out, "mean_probability/" + name, s["mean_probability"]);
        if (s.contains("border_entropy")) put(out, "border_entropy/" + name, s["border_entropy"]);
      }
    if (qa.contains("needs_review") && qa["needs_review"].is_boolean()) out["needs_review"] = qa["needs_review"].get<bool>() ? 1 : 0;
  }
  const json input = qa.is_object() ? qa.value("input", json::object()) : json::object();
  if (input.is_object() && input.contains("intensity") && input["intensity"].is_object()) {
    const json& i = input["intensity"];
    for (const char* key : {"median", "p00_5", "p99_5"})
      if (i.contains(key)) put(out, std::string("input/intensity_") + key, i[key]);
  }
  // Spacing and field of view: the qa section's, else the label map's grid (the input's).
  json spacing = input.is_object() ? input.value("spacing_mm", json()) : json();
  json fov = input.is_object() ? input.value("field_of_view_mm", json()) : json();
  const json geometry = report.value("geometry", json::object());
  if (!spacing.is_array() && geometry.is_object() && geometry.contains("spacing")) spacing = geometry["spacing"];
  if (!fov.is_array() && geometry.is_object() && geometry.contains("spacing") && geometry.contains("size") &&
      geometry["size"].is_array() && geometry["spacing"].is_array() && geometry["size"].size() == geometry["spacing"].size()) {
    fov = json::array();
    for (std::size_t k = 0; k < geometry["size"].size(); ++k)
      fov.push_back(geometry["size"][k].is_number() && geometry["spacing"][k].is_number()
                        ? json(geometry["size"][k].get<double>() * geometry["spacing"][k].get<double>())
                        : json());
  }
  if (spacing.is_array())
    for (std::size_t k = 0; k < spacing.size() && k < 3; ++k) put(out, fmt::format("input/spacing_mm[{}]", k), spacing[k]);
  if (fov.is_array())
    for (std::size_t k = 0; k < fov.size() && k < 3; ++k) put(out, fmt::format("input/field_of_view_mm[{}]", k), fov[k]);
  return out;
}

Batch read_batch(const fs::path& folder) {
  Batch b;
  b.folder = folder;
  std::error_code ec;
  if (!fs::exists(folder, ec)) throw MonitorError(folder.string() + ": no such folder");
  if (!fs::is_directory(folder, ec)) throw MonitorError(folder.string() + ": not a folder (give a `sagitta segment --cohort` output folder)");
  std::vector<fs::path> reports;
  if (fs::is_regular_file(folder / "report.json", ec)) reports.push_back(folder / "report.json");
  for (const auto& e : fs::directory_iterator(folder, ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.front() == '.' || !e.is_directory(ec)) continue;  // staging folders of a running batch
    if (fs::is_regular_file(e.path() / "report.json", ec)) reports.push_back(e.path() / "report.json");
  }
  if (ec) throw MonitorError(folder.string() + ": cannot be listed (" + ec.message() + ")");
  for (const auto& r : reports) {
    try {
      b.studies.push_back(read_study(r, folder.string()));
    } catch (const MonitorError& e) {
      b.skipped.push_back(r.string() + ": skipped: " + e.what());
    }
  }
  if (b.studies.empty())
    throw MonitorError(folder.string() + (reports.empty() ? ": no report.json in it or its sub-folders (give a `sagitta segment --cohort` output folder)"
                                                          : ": no usable report.json (" + b.skipped.front() + ")"));
  std::stable_sort(b.studies.begin(), b.studies.end(), [](const Study& x, const Study& y) {
    return x.time != y.time ? x.time < y.time : x.id < y.id;
  });
  return b;
}

}  // namespace sagitta::monitor

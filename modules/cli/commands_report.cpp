// `sagitta report`: the self-contained HTML page of a study's output folder (its report.json, the
// input it names, the labels and heatmaps it lists), or of a cohort's output folder (a page that
// links every study's page). The page is sagitta::viewer's html_report; pictures need X.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <tuple>

#include "command.h"
#include "sagitta/batch/batch.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/dicom/open_volume.h"
#include "sagitta/viewer/display.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/html_report.h"
#include "sagitta/viewer/report_pictures.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace vw = sagitta::viewer;
using nlohmann::json;
namespace {

CommandSpec report_spec() {
  CommandSpec s = command_spec("report", "Sagitta Report",
      "Writes one self-contained HTML page of a study's output folder (what `sagitta segment` or `sagitta explain` "
      "wrote): needs-review verdict, volumes, quality flags with their evidence, a slice montage with the labels, "
      "heatmaps, the 3D surfaces, faithfulness numbers and provenance. Pictures are inlined; the page loads nothing. "
      "Pictures need an X display (xvfb-run -a); without one the page is written without them and says so. Given a "
      "cohort's output folder, writes each study's page and a cohort page linking them.");
  Parameter folder = positional("folder", ParamType::Directory, 0, "Output folder",
                                "A study's output folder (with report.json) or a cohort's (one folder per study)");
  folder.required = true;
  Parameter out = parameter("output", ParamType::File, "output", "", "Page",
                            "HTML file to write (default: FOLDER/report.html)");
  out.flag = "o";
  out.channel = Channel::Output;
  Parameter width = ranged(option("width", ParamType::Integer, "width", "Picture width",
                                  "Width in pixels of the pictures", "960"), 128, 4096);
  Parameter count = ranged(option("montage_count", ParamType::Integer, "montage-count", "Montage slices",
                                  "Axial slices in the montage", "9"), 1, 64);
  Parameter explanation = option("explanation", ParamType::Directory, "explanation", "Explanation",
                                 "A `sagitta explain` output folder of the same input: its heatmaps and faithfulness numbers "
                                 "join the study's page");
  explanation.channel = Channel::Input;
  Parameter quiet = switch_option("quiet", "quiet", "Quiet", "Print nothing on stdout (segment --html --json uses it)");
  quiet.slicer = false;
  s.groups.push_back({"Report", "", {folder, out, explanation, width, count, quiet}});
  return s;
}

json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw sagitta::Error(path.string() + ": cannot read");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw sagitta::Error(path.string() + ": not a JSON report");
  return j;
}

// Where an input named in the report is now: as written (absolute, or relative to the current
// folder), else relative to the study folder.
fs::path find_input(const std::string& path, const fs::path& folder) {
  if (fs::exists(path)) return path;
  if (fs::path(path).is_relative() && fs::exists(folder / path)) return folder / path;
  throw sagitta::Error(fmt::format("{}: the input named in report.json ('{}') is not there; the pictures need it", folder.string(), path));
}

// The labels, the card's colours (else defaults named from the report) and every heatmap listed.
// The label maps and heatmaps among a report's outputs: (labels|heatmap, label name, file).
std::vector<std::tuple<std::string, std::string, fs::path>> volume_outputs(const json& report, const fs::path& folder) {
  std::vector<std::tuple<std::string, std::string, fs::path>> found;
  const auto ends = [](const std::string& n, const std::string& e) {
    return n.size() > e.size() && n.compare(n.size() - e.size(), e.size(), e) == 0;
  };
  for (const auto& name : report.value("outputs", json::array())) {
    if (!name.is_string()) continue;
    const std::string n = name;
    if (n.find('/') != std::string::npos) continue;
    std::string stem = ends(n, ".nrrd") ? n.substr(0, n.size() - 5) : ends(n, ".nii.gz") ? n.substr(0, n.size() - 7)
                     : ends(n, ".nii") ? n.substr(0, n.size() - 4) : "";
    if (stem == "labels") found.emplace_back("labels", "", folder / n);
    if (stem.rfind("heatmap", 0) == 0) {
      std::string label = stem.size() > 8 ? stem.substr(8) : "";
      // One heatmap without a suffix (sagitta explain): its label is the explanation's.
      const json& l = report.value("explanation", json::object()).value("labels", json::array());
      if (label.empty() && l.size() == 1) label = l[0].value("name", "");
      found.emplace_back("heatmap", label.empty() ? "target" : label, folder / n);
    }
  }
  return found;
}

std::vector<vw::ReportPicture> pictures(const json& report, const fs::path& folder, const std::optional<json>& explained,
                                        const fs::path& explanation_folder, const Arguments& a) {
  const json& inputs = report.value("inputs", json::array());
  if (!inputs.is_array() || inputs.empty() || !inputs[0].value("path", json()).is_string())
    throw sagitta::Error((folder / "report.json").string() + ": names no input (inputs[0].path)");
  dicom::OpenOptions oo;
  if (inputs[0].contains("stack") && inputs[0]["stack"].value("id", json()).is_string()) oo.series = inputs[0]["stack"]["id"];
  oo.single_volume = false;
  const dicom::OpenedVolume in = dicom::open_volume(find_input(inputs[0]["path"], folder), oo);
  vw::LabelImage::Pointer labels;
  std::vector<std::pair<std::string, vw::Image::Pointer>> heatmaps;
  for (const auto& [kind, name, file] : volume_outputs(report, folder)) {
    if (kind == "labels") labels = vw::read_label_map(file, in.volume);
    if (kind == "heatmap") heatmaps.emplace_back(name, vw::read_heatmap(file, in.volume));
  }
  if (explained)
    for (const auto& [kind, name, file] : volume_outputs(*explained, explanation_folder))
      if (kind == "heatmap") heatmaps.emplace_back(name + " (sagitta explain)", vw::read_heatmap(file, in.volume));
  vw::Scene scene(in.volume, labels, nullptr, in.modality);
  const std::string card = report.value("model", json::object()).value("card", "");
  if (!card.empty() && fs::is_regular_file(card)) {
    scene.label_table = vw::LabelTable::from_model_card(card, scene.max_label());
  } else {
    const json& l = report.contains("labels") ? report["labels"] : report.value("segmentation", json::array());
    for (const auto& x : l)
      if (x.value("value", 0) > 0 && x.value("value", 0) <= scene.max_label()) scene.label_table[x["value"]].name = x.value("name", "");
  }
  vw::StudyPictureOptions po;
  po.width = int(a.integer("width"));
  po.montage_count = int(a.integer("montage_count"));
  return vw::study_pictures(scene, heatmaps, po);
}

// One study's page; returns its report (for a cohort page).
json write_study(const fs::path& folder, const fs::path& page, const Arguments& a) {
  json report = read_json(folder / "report.json");
  check_output_file(page);
  std::optional<json> explained;
  const fs::path explanation_folder = a.text("explanation");
  if (!explanation_folder.empty()) {
    explained = read_json(explanation_folder / "report.json");
    const auto input = [](const json& r) {
      const json& in = r.value("inputs", json::array());
      return in.is_array() && !in.empty() ? fs::weakly_canonical(in[0].value("path", "")) : fs::path();
    };
    if (input(*explained) != input(report) || !explained->contains("explanation"))
      throw sagitta::Error(fmt::format("{}: not a `sagitta explain` of the study's input ({})", explanation_folder.string(),
                                       input(report).string()));
    // Its numbers (faithfulness, sanity) are the page's explanation when the study has none measured.
    // Its labels (with their faithfulness and sanity numbers) replace the study's of the same name.
    if (!report.contains("explanation") || !report["explanation"].value("labels", json()).is_array()) {
      report["explanation"] = (*explained)["explanation"];
    } else {
      json& mine = report["explanation"]["labels"];
      for (const auto& l : (*explained)["explanation"].value("labels", json::array())) {
        auto same = std::find_if(mine.begin(), mine.end(), [&](const json& m) { return m.value("name", "") == l.value("name", ""); });
        if (same != mine.end()) *same = l;
        else mine.push_back(l);
      }
    }
  }
  std::vector<std::string> notes;
  std::vector<vw::ReportPicture> pics;
  if (vw::display_available()) {
    pics = pictures(report, folder, explained, explanation_folder, a);
  } else {
    const std::string note = "No X display: the slice montage, heatmap and 3D pictures need OpenGL and are left out of "
                             "this page; run `xvfb-run -a sagitta report ...` to include them.";
    notes.push_back(note);
    std::cerr << "sagitta report: " << note << "\n";
  }
  write_text_atomically(page, vw::study_report_html(report, pics, notes, fmt::format("Sagitta {} (sagitta report)", kVersion)));
  return report;
}

vw::CohortStudy cohort_entry(const std::string& id, const json& report) {
  vw::CohortStudy s;
  s.id = id;
  s.link = id + "/report.html";
  s.status = "done";
  const json qa = report.value("qa", json());
  if (qa.is_object() && qa.value("needs_review", json()).is_boolean()) s.needs_review = qa["needs_review"].get<bool>();
  if (qa.is_object()) {
    for (const auto& f : qa.value("flags", json::array())) s.flags.push_back(f.value("check", "?"));
    for (const auto& st : qa.value("structures", json::array()))
      for (const auto& f : st.value("flags", json::array())) s.flags.push_back(st.value("name", "?") + ": " + f.value("check", "?"));
  }
  for (const auto& l : report.value("labels", json::array()))
    if (l.value("value", 0) != 0) s.volumes_ml[l.value("name", "?")] = l.value("volume_ml", json());
  return s;
}

int run_report(const Arguments& a) {
  const fs::path folder = a.text("folder");
  if (!fs::is_directory(folder)) throw sagitta::Error(folder.string() + ": not a folder");
  const fs::path page = a.text("output").empty() ? folder / "report.html" : fs::path(a.text("output"));
  if (fs::exists(folder / "report.json")) {
    write_study(folder, page, a);
    if (!a.flag("quiet")) fmt::print("wrote {}\n", page.string());
    return kExitOk;
  }
  // A cohort: one sub-folder per study, each with its report.json.
  std::vector<fs::path> studies;
  for (const auto& e : fs::directory_iterator(folder))
    if (e.is_directory() && e.path().filename().string()[0] != '.' && fs::exists(e.path() / "report.json"))
      studies.push_back(e.path());
  if (studies.empty())
    throw sagitta::Error(folder.string() + ": no report.json, and no study folders with one (give what `sagitta segment` wrote)");
  std::sort(studies.begin(), studies.end());
  check_output_file(page);
  std::vector<vw::CohortStudy> entries;
  for (const auto& s : studies) {
    const std::string id = s.filename().string();
    entries.push_back(cohort_entry(id, write_study(s, s / "report.html", a)));
    if (fs::weakly_canonical(fs::absolute(page).parent_path()) != fs::weakly_canonical(folder))
      entries.back().link = fs::absolute(s / "report.html").string();
  }
  // Studies the batch CSVs list without a finished folder (failed, not run) are listed too.
  std::set<std::string> listed;
  for (const auto& e : entries) listed.insert(e.id);
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.rfind("batch", 0) != 0 || e.path().extension() != ".csv") continue;
    for (auto& row : batch::read_batch_csv(e.path()))
      if (!row["id"].empty() && listed.insert(row["id"]).second) {
        vw::CohortStudy st;
        st.id = row["id"];
        st.status = row["status"];
        st.message = row["message"];
        entries.push_back(std::move(st));
      }
  }
  std::vector<std::string> notes;
  if (!vw::display_available()) notes.push_back("No X display: the studies' pages were written without their pictures.");
  const fs::path name = fs::weakly_canonical(folder).filename();
  write_text_atomically(page, vw::cohort_report_html("Sagitta cohort: " + name.string(),
                                                     entries, notes, fmt::format("Sagitta {} (sagitta report)", kVersion)));
  if (!a.flag("quiet")) fmt::print("wrote {} and {} stud{} pages\n", page.string(), studies.size(), studies.size() == 1 ? "y's" : "ies'");
  return kExitOk;
}

}  // namespace

std::vector<Command> report_commands() { return {{report_spec(), run_report}}; }

}  // namespace sagitta::cli

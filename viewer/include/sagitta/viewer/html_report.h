#pragma once
// The self-contained HTML report of a study (from its report.json) and of a cohort: one file, its
// pictures inlined as base64 PNG data URIs, no scripts, no network, no external CSS or fonts;
// fluid layout for a phone. Every text from the report (patient and series strings too) is
// HTML-escaped. The pictures are rendered by report_pictures.h; this part needs no display.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sagitta::viewer {

// A picture of the page: PNG bytes, a title and a caption.
struct ReportPicture {
  std::string title;
  std::string caption;
  std::string png;  // the PNG file's bytes
};

// The page of one study. `report` is its report.json (a `sagitta segment` or `sagitta explain`
// report; the qa section, explanation and faithfulness numbers are shown when present). `notes`
// are said at the top (e.g. pictures left out without a display). `generator` names the writer.
std::string study_report_html(const nlohmann::json& report, const std::vector<ReportPicture>& pictures,
                              const std::vector<std::string>& notes, const std::string& generator);

// One study of a cohort page.
struct CohortStudy {
  std::string id;
  std::string link;                 // relative link to its report.html ("" when there is none)
  std::string status;               // done / failed / ... (from the report or the batch CSV)
  std::optional<bool> needs_review; // nullopt: no qa section
  std::vector<std::string> flags;   // the study's flag checks
  nlohmann::json volumes_ml = nlohmann::json::object();  // label name -> mL
  std::string message;              // a failure's message
};

// The page of a cohort: every study with its link, needs_review, flags and volumes.
std::string cohort_report_html(const std::string& title, const std::vector<CohortStudy>& studies,
                               const std::vector<std::string>& notes, const std::string& generator);

}  // namespace sagitta::viewer

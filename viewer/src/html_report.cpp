// The study and cohort HTML pages (html_report.h): plain strings, no display needed.
#include "sagitta/viewer/html_report.h"

#include <fmt/format.h>
#include "sagitta/core/markup.h"

#include <cmath>

namespace sagitta::viewer {
namespace {
using nlohmann::json;

// Length of the valid UTF-8 sequence starting at s[i], 0 when it is not one.
std::string esc(const json& j) { return html_escape(j.is_string() ? j.get<std::string>() : j.is_null() ? "" : j.dump()); }

// A number for a table: null -> "n/a", integers as they are, else `digits` decimals.
std::string num(const json& j, int digits = 2) {
  if (j.is_null() || j.is_discarded()) return "n/a";
  if (j.is_number_integer() || j.is_number_unsigned()) return j.dump();
  if (j.is_number_float()) {
    const double v = j.get<double>();
    return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "n/a";
  }
  if (j.is_boolean()) return j.get<bool>() ? "yes" : "no";
  return esc(j);
}

// A measured value or threshold as it is: numbers with 4 significant digits, text escaped.
std::string value(const json& j) {
  if (j.is_number_float()) return std::isfinite(j.get<double>()) ? fmt::format("{:.4g}", j.get<double>()) : "n/a";
  if (j.is_array()) {
    std::string s;
    for (const auto& x : j) s += (s.empty() ? "" : " × ") + value(x);
    return s;
  }
  return j.is_null() ? "n/a" : j.is_string() ? esc(j) : num(j);
}

const json& at(const json& j, const char* key) {
  static const json null;
  return j.is_object() && j.contains(key) ? j[key] : null;
}

const char* kStyle = R"(<style>
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:0 .8rem 2rem;color:#1b1f24;background:#fafbfc;line-height:1.4;overflow-wrap:break-word}
main{max-width:64rem;margin:0 auto}
h1{font-size:1.4rem;margin:1rem 0 .3rem}h2{font-size:1.15rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d0d7de}
img{max-width:100%;height:auto;display:block;border:1px solid #d0d7de;background:#000}
figure{margin:0 0 1rem}figcaption{font-size:.85rem;color:#57606a}
.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.9rem;min-width:50%}
th,td{border:1px solid #d0d7de;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#eef1f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.verdict{font-size:1.2rem;font-weight:700;padding:.7rem 1rem;border-radius:.4rem;margin:.8rem 0}
.review{background:#ffebe9;border:2px solid #cf222e;color:#82071e}
.ok{background:#dafbe1;border:2px solid #1a7f37;color:#0a3622}
.unknown{background:#fff8c5;border:2px solid #9a6700;color:#4d2d00}
.note{background:#fff8c5;border-left:4px solid #9a6700;padding:.4rem .7rem;margin:.4rem 0}
.flag{color:#82071e;font-weight:600}tr.what td{border-top:0;padding-bottom:.5rem}tr.flag-row td{border-bottom:0}.muted{color:#57606a}code{word-break:break-all}
</style>)";

std::string head(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<meta name=\"referrer\" content=\"no-referrer\">\n<title>" +
         html_escape(title) + "</title>\n" + kStyle + "\n</head>\n<body>\n<main>\n";
}

std::string tail(const std::string& generator) {
  return "<p class=\"muted\">Written by " + html_escape(generator) +
         ". This page is one file: its pictures are inside it and it loads nothing from the network.</p>\n"
         "</main>\n</body>\n</html>\n";
}

std::string notes_html(const std::vector<std::string>& notes) {
  std::string s;
  for (const auto& n : notes) s += "<p class=\"note\" data-role=\"note\">" + html_escape(n) + "</p>\n";
  return s;
}

// The verdict box: needs_review from the qa section, or that the report has none.
std::string verdict(const json& qa) {
  if (!qa.is_object() || !qa.contains("needs_review"))
    return "<div class=\"verdict unknown\" id=\"needs-review\" data-needs-review=\"unknown\">No quality checks in this "
           "report (it was written without a qa section): nothing was checked, nothing is vouched for.</div>\n";
  std::size_t flags = at(qa, "flags").size();
  for (const auto& s : at(qa, "structures")) flags += at(s, "flags").size();
  if (qa["needs_review"].is_boolean() && qa["needs_review"].get<bool>())
    return fmt::format("<div class=\"verdict review\" id=\"needs-review\" data-needs-review=\"true\">NEEDS REVIEW: {} "
                       "flag{} raised; a person must check this result before it is used.</div>\n",
                       flags, flags == 1 ? "" : "s");
  return "<div class=\"verdict ok\" id=\"needs-review\" data-needs-review=\"false\">No flags: every check that ran passed "
         "(see the skipped checks below).</div>\n";
}

std::string flag_rows(const json& flags, const std::string& subject_default) {
  std::string s;
  for (const auto& f : flags) {
    const json& subject = at(f, "subject");
    s += "<tr class=\"flag-row\"><td class=\"flag\">" + esc(at(f, "check")) + "</td><td>" +
         (subject.is_null() ? html_escape(subject_default) : esc(subject)) + "</td><td class=\"n\">" +
         value(at(f, "measured")) + "</td><td>" + value(at(f, "expected")) + "</td></tr>\n<tr class=\"what\"><td colspan=\"4\">" +
         esc(at(f, "what")) + "</td></tr>\n";
  }
  return s;
}

std::string qa_section(const json& qa) {
  if (!qa.is_object()) return "";
  std::string s = "<h2>Quality checks</h2>\n";
  std::string rows = flag_rows(at(qa, "flags"), "study");
  for (const auto& st : at(qa, "structures")) rows += flag_rows(at(st, "flags"), at(st, "name").is_string() ? st["name"].get<std::string>() : "");
  if (rows.empty())
    s += "<p>No flags.</p>\n";
  else
    s += "<div class=\"scroll\"><table id=\"flags\"><tr><th>check</th><th>subject</th><th>measured</th><th>expected</th>"
         "</tr>\n" + rows + "</table></div>\n";
  if (!at(qa, "skipped").empty()) {
    s += "<p>Checks that did not run:</p>\n<ul id=\"skipped\">\n";
    for (const auto& k : qa["skipped"]) s += "<li><b>" + esc(at(k, "check")) + "</b>: " + esc(at(k, "why")) + "</li>\n";
    s += "</ul>\n";
  }
  const json& th = at(qa, "thresholds");
  if (th.is_object() && !th.empty()) {
    s += "<p class=\"muted\">Thresholds (from " + esc(at(th, "source")) + "): ";
    std::string list;
    for (const auto& [k, v] : th.items())
      if (k != "source") list += (list.empty() ? "" : ", ") + html_escape(k) + " " + value(v);
    s += list + "</p>\n";
  }
  const json& in = at(qa, "input");
  if (in.is_object() && !in.empty()) {
    s += "<div class=\"scroll\"><table id=\"input-stats\"><tr><th>input</th><th>value</th></tr>\n";
    for (const char* k : {"modality", "body_part", "spacing_mm", "field_of_view_mm"})
      if (in.contains(k)) s += "<tr><td>" + std::string(k) + "</td><td>" + value(in[k]) + "</td></tr>\n";
    // Intensity statistics: one object, or one per input channel.
    for (const char* k : {"intensity", "foreground_intensity"}) {
      const json& stats = at(in, k);
      const json list = stats.is_array() ? stats : json::array({stats});
      for (std::size_t c = 0; c < list.size(); ++c) {
        if (!list[c].is_object()) continue;
        std::string v;
        for (const auto& [name, x] : list[c].items()) v += (v.empty() ? "" : ", ") + html_escape(name) + " " + value(x);
        s += "<tr><td>" + std::string(k) + (list.size() > 1 ? fmt::format(" (channel {})", c) : "") + "</td><td>" + v +
             "</td></tr>\n";
      }
    }
    s += "</table></div>\n";
  }
  return s;
}

// The structures: volumes from labels[], confidence from qa.structures[] (matched by name).
std::string volumes_section(const json& labels, const json& qa) {
  std::string s = "<h2>Structures</h2>\n<div class=\"scroll\"><table id=\"volumes\"><tr><th>value</th><th>structure</th>"
                  "<th>volume (mL)</th><th>voxels</th>";
  const json& structures = at(qa, "structures");
  const bool confidence = structures.is_array() && !structures.empty();
  if (confidence)
    s += "<th>mean probability</th><th>border entropy</th><th>components</th><th>touches edge</th><th>needs review</th>";
  s += "</tr>\n";
  for (const auto& l : labels) {
    if (at(l, "value") == json(0)) continue;
    s += "<tr><td class=\"n\">" + num(at(l, "value")) + "</td><td>" + esc(at(l, "name")) + "</td><td class=\"n\">" +
         num(at(l, "volume_ml")) + "</td><td class=\"n\">" + num(at(l, "voxels")) + "</td>";
    if (confidence) {
      json q;
      for (const auto& st : structures)
        if (at(st, "name") == at(l, "name")) q = st;
      const bool review = at(q, "needs_review").is_boolean() && q["needs_review"].get<bool>();
      s += "<td class=\"n\">" + num(at(q, "mean_probability"), 3) + "</td><td class=\"n\">" + num(at(q, "border_entropy"), 3) +
           "</td><td class=\"n\">" + num(at(q, "components")) + "</td><td>" + num(at(q, "touches_edge")) + "</td><td" +
           (review ? " class=\"flag\">yes" : ">" + (q.is_null() ? std::string("n/a") : "no")) + "</td>";
    }
    s += "</tr>\n";
  }
  return s + "</table></div>\n";
}

// Grad-CAM and its faithfulness numbers (sagitta explain measures them; segment --explain does not).
std::string explanation_section(const json& e) {
  if (!e.is_object()) return "";
  std::string s = "<h2>Explanation</h2>\n<p>" + esc(at(e, "method")) + " at layer <code>" + esc(at(e, "layer")) +
                  "</code>; score " + esc(at(e, "score")) + " over the " + esc(at(e, "region")) + ".</p>\n";
  s += "<div class=\"scroll\"><table id=\"faithfulness\"><tr><th>structure</th><th>heatmap mass in the structure</th>"
       "<th>deletion area (lower: more faithful)</th><th>random-order deletion area</th><th>randomised-model correlation</th>"
       "<th>sanity check</th></tr>\n";
  bool measured = false;
  for (const auto& l : at(e, "labels")) {
    const json& d = at(l, "deletion");
    const json& r = at(l, "randomisation");
    measured = measured || d.is_object() || r.is_object();
    s += "<tr><td>" + esc(at(l, "name")) + "</td><td class=\"n\">" + num(at(l, "mass_in_target"), 3) + "</td><td class=\"n\">" +
         num(at(d, "area"), 3) + "</td><td class=\"n\">" + num(at(d, "random_order_area"), 3) + "</td><td class=\"n\">" +
         num(at(r, "correlation"), 3) + "</td><td>" +
         (r.is_object() ? (at(r, "passed") == json(true) ? "passed" : "<span class=\"flag\">failed</span>") : "n/a") +
         "</td></tr>\n";
  }
  s += "</table></div>\n";
  if (!measured)
    s += "<p class=\"muted\">Faithfulness (deletion curve) and the model-randomisation sanity check were not measured in "
         "this run; <code>sagitta explain</code> measures them.</p>\n";
  return s;
}

std::string provenance_section(const json& r) {
  std::string s = "<h2>Provenance</h2>\n<div class=\"scroll\"><table id=\"provenance\">\n";
  const auto row = [&](const std::string& k, const std::string& v) {
    s += "<tr><th>" + html_escape(k) + "</th><td><code>" + v + "</code></td></tr>\n";
  };
  std::size_t i = 0;
  for (const auto& in : at(r, "inputs")) {
    const std::string tag = at(r, "inputs").size() > 1 ? fmt::format("input {}", i++) : "input";
    row(tag, esc(at(in, "path")) + " (" + esc(at(in, "kind")) + ")");
    const json& st = at(in, "stack");
    const std::pair<const char*, std::vector<const char*>> fields[] = {
        {"patient", {"patient", "name"}},          {"patient id", {"patient", "id"}},
        {"study date", {"study", "date"}},         {"study", {"study", "description"}},
        {"study uid", {"study", "uid"}},           {"series", {"series", "description"}},
        {"series number", {"series", "number"}},   {"series uid", {"series", "uid"}},
        {"modality", {"series", "modality"}},      {"body part", {"series", "body_part"}},
        {"manufacturer", {"series", "manufacturer"}}, {"images", {"images"}},
        {"transfer syntax", {"transfer_syntax", "name"}}, {"size", {"size"}}, {"spacing (mm)", {"spacing"}}};
    for (const auto& [name, keys] : fields) {
      const json* j = &st;
      for (const char* k : keys) j = &at(*j, k);
      if (!j->is_null() && !(j->is_string() && j->get<std::string>().empty())) row(tag + " " + name, value(*j));
    }
  }
  const json& m = at(r, "model");
  for (const char* k : {"name", "version", "format", "card", "card_sha256", "weights", "weights_sha256", "device"})
    if (m.is_object() && m.contains(k)) row(std::string("model ") + k, esc(m[k]));
  row("command", esc(at(r, "command")));
  row("sagitta version", esc(at(r, "sagitta_version")));
  if (at(r, "options").is_object()) row("options", esc(r["options"].dump()));
  if (at(at(r, "timings_s"), "total").is_number()) row("seconds", num(r["timings_s"]["total"]));
  s += "</table></div>\n";
  const json& decisions = at(r, "decisions");
  if (decisions.is_array() && !decisions.empty()) {
    s += "<details><summary>Decisions taken while reading and segmenting (" + std::to_string(decisions.size()) +
         ")</summary><ul>\n";
    for (const auto& d : decisions) s += "<li>" + esc(d.is_string() ? d : json(d.dump())) + "</li>\n";
    s += "</ul></details>\n";
  }
  return s;
}

std::string pictures_section(const std::vector<ReportPicture>& pictures) {
  if (pictures.empty()) return "";
  std::string s = "<h2>Pictures</h2>\n";
  for (const auto& p : pictures)
    s += "<figure><img alt=\"" + html_escape(p.title) + "\" src=\"data:image/png;base64," + base64(p.png) +
         "\"><figcaption><b>" + html_escape(p.title) + "</b> " + html_escape(p.caption) + "</figcaption></figure>\n";
  return s;
}

}  // namespace

std::string study_report_html(const json& report, const std::vector<ReportPicture>& pictures,
                              const std::vector<std::string>& notes, const std::string& generator) {
  const json& inputs = at(report, "inputs");
  const json& first = inputs.is_array() && !inputs.empty() ? inputs[0] : json();
  std::string title = "Sagitta report";
  const json& id = at(at(report, "batch"), "id");
  if (id.is_string()) title += ": " + id.get<std::string>();
  else if (at(first, "path").is_string()) title += ": " + std::filesystem::path(first["path"].get<std::string>()).filename().string();
  const json& qa = at(report, "qa");
  const json& labels = at(report, "labels").is_array() ? report["labels"] : at(report, "segmentation");
  std::string s = head(title);
  const json& series = at(at(first, "stack"), "series");
  std::string sub;
  for (const json* part : {&at(at(report, "model"), "name"), &at(at(report, "model"), "version"), &at(series, "modality"),
                           &at(series, "description"), &at(at(at(first, "stack"), "study"), "date"), &at(first, "path")}) {
    const std::string text = esc(*part);
    if (!text.empty()) sub += (sub.empty() ? "" : " · ") + text;
  }
  s += "<h1>" + html_escape(title) + "</h1>\n<p class=\"muted\">Model " + sub + "</p>\n";
  s += verdict(qa) + notes_html(notes);
  s += volumes_section(labels.is_array() ? labels : json::array(), qa);
  s += qa_section(qa);
  s += pictures_section(pictures);
  s += explanation_section(at(report, "explanation"));
  s += provenance_section(report);
  return s + tail(generator);
}

std::string cohort_report_html(const std::string& title, const std::vector<CohortStudy>& studies,
                               const std::vector<std::string>& notes, const std::string& generator) {
  std::size_t review = 0, unchecked = 0, failed = 0;
  for (const auto& st : studies) {
    review += st.needs_review.value_or(false);
    unchecked += !st.needs_review.has_value();
    failed += st.status == "failed";
  }
  std::string s = head(title) + "<h1>" + html_escape(title) + "</h1>\n";
  s += fmt::format("<div class=\"verdict {}\" id=\"needs-review\">{} of {} stud{} need{} review; {} without quality "
                   "checks; {} failed.</div>\n",
                   review ? "review" : unchecked ? "unknown" : "ok", review, studies.size(), studies.size() == 1 ? "y" : "ies",
                   review == 1 ? "s" : "", unchecked, failed);
  s += notes_html(notes);
  s += "<div class=\"scroll\"><table id=\"studies\"><tr><th>study</th><th>status</th><th>needs review</th><th>flags</th>"
       "<th>volumes (mL)</th></tr>\n";
  for (const auto& st : studies) {
    const std::string name = st.link.empty() ? html_escape(st.id)
                                             : "<a href=\"" + html_escape(st.link) + "\">" + html_escape(st.id) + "</a>";
    std::string flags, volumes;
    for (const auto& f : st.flags) flags += (flags.empty() ? "" : ", ") + html_escape(f);
    for (const auto& [k, v] : st.volumes_ml.items()) volumes += (volumes.empty() ? "" : "; ") + html_escape(k) + " " + num(v);
    s += "<tr><td>" + name + "</td><td>" + html_escape(st.status) + (st.message.empty() ? "" : ": " + html_escape(st.message)) +
         "</td><td" + (st.needs_review ? (*st.needs_review ? " class=\"flag\">yes" : ">no") : std::string(">n/a")) +
         "</td><td>" + flags + "</td><td>" + volumes + "</td></tr>\n";
  }
  return s + "</table></div>\n" + tail(generator);
}

}  // namespace sagitta::viewer

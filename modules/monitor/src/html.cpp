// The monitor's self-contained HTML page and its small inline SVG figures (declarations: monitor.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>

#include "sagitta/core/markup.h"
#include "sagitta/monitor/monitor.h"
#include "sagitta/monitor/statistics.h"

namespace sagitta::monitor {

namespace {

std::string number(double v) { return std::isfinite(v) ? fmt::format("{:.4g}", v) : "&ndash;"; }

constexpr const char* kReferenceColour = "#4c72b0";
constexpr const char* kCurrentColour = "#dd8452";
constexpr int kWidth = 320, kHeight = 160, kPad = 24;

std::string svg_open(const std::string& label) {
  return fmt::format("<svg viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"{}\">"
                     "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>",
                     kWidth, kHeight, html_escape(label));
}

std::string legend() {
  return fmt::format("<text x=\"{}\" y=\"12\" font-size=\"10\" fill=\"{}\">reference</text>"
                     "<text x=\"{}\" y=\"12\" font-size=\"10\" fill=\"{}\">current</text>",
                     kPad, kReferenceColour, kPad + 70, kCurrentColour);
}

std::string utc(double seconds) {
  const std::time_t t = std::time_t(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &tm);
  return text;
}

}  // namespace


std::string svg_histogram(const Drift& d) {
  const std::vector<double> edges = decile_edges(d.reference);
  const std::vector<double> r = bin_shares(d.reference, edges), c = bin_shares(d.current, edges);
  double top = 0;
  for (std::size_t k = 0; k < r.size(); ++k) top = std::max({top, r[k], c[k]});
  if (top <= 0) top = 1;
  std::string s = svg_open(d.quantity + ": shares per reference decile bin") + legend();
  const double slot = double(kWidth - 2 * kPad) / double(r.size()), h = kHeight - 2 * kPad;
  for (std::size_t k = 0; k < r.size(); ++k) {
    const double x = kPad + slot * double(k);
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>", x + 1,
                     kPad + h * (1 - r[k] / top), slot / 2 - 1, h * r[k] / top, kReferenceColour);
    s += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"/>", x + slot / 2,
                     kPad + h * (1 - c[k] / top), slot / 2 - 1, h * c[k] / top, kCurrentColour);
  }
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\">bins: the reference's deciles ({} bins); share up to {:.2f}</text>",
                   kPad, kHeight - 6, r.size(), top);
  return s + "</svg>";
}

std::string svg_series(const Drift& d) {
  std::vector<double> all = d.reference;
  all.insert(all.end(), d.current.begin(), d.current.end());
  std::string s = svg_open(d.quantity + " in time order") + legend();
  if (all.empty()) return s + "</svg>";
  double lo = *std::min_element(all.begin(), all.end()), hi = *std::max_element(all.begin(), all.end());
  if (hi - lo <= 0) lo -= 1, hi += 1;
  const double w = kWidth - 2 * kPad, h = kHeight - 2 * kPad;
  const double step = all.size() > 1 ? w / double(all.size() - 1) : 0;
  for (std::size_t k = 0; k < all.size(); ++k)
    s += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>", kPad + step * double(k),
                     kPad + h * (1 - (all[k] - lo) / (hi - lo)), k < d.reference.size() ? kReferenceColour : kCurrentColour);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\">{:.4g} .. {:.4g}, studies in time order</text>", kPad,
                   kHeight - 6, lo, hi);
  return s + "</svg>";
}

std::string to_html(const Comparison& c, const std::vector<Figure>& figures, const PageInfo& info) {
  std::string h = R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sagitta monitor</title>
<style>
body{font-family:system-ui,sans-serif;margin:0 auto;padding:0.8em;max-width:1100px;line-height:1.4}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}
.wrap{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:0.9em}
td,th{padding:0.25em 0.5em;border-bottom:1px solid #ddd;text-align:right;white-space:nowrap}
td:first-child,th:first-child,td:last-child,td:nth-child(2){text-align:left}
.alarm{background:#f8d0d0}.warn{background:#fbeec0}.too-few{color:#777}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:0.8em}
figure{margin:0;border:1px solid #ddd;padding:0.4em}figure img,figure svg{width:100%;height:auto;display:block}
figcaption{font-size:0.85em}
.verdict{font-size:1.1em;padding:0.5em;border-radius:4px}
</style></head><body>
<h1>Sagitta monitor</h1>
)";
  const char* verdict_class = c.alarms ? "alarm" : c.warnings ? "warn" : "";
  h += fmt::format("<p class=\"verdict {}\">{} alarm{}, {} warning{} over {} quantities.</p>\n", verdict_class, c.alarms,
                   c.alarms == 1 ? "" : "s", c.warnings, c.warnings == 1 ? "" : "s", c.drifts.size());
  auto folders = [&](const std::vector<std::string>& list) {
    std::string out;
    for (const auto& f : list) out += (out.empty() ? "" : ", ") + std::string("<code>") + html_escape(f) + "</code>";
    return out.empty() ? std::string("&ndash;") : out;
  };
  h += fmt::format("<p>Reference: {}<br>Current: {}<br>Thresholds: PSI &gt; {:g} warns, &gt; {:g} alarms; KS p &lt; {:g} "
                   "alarms; at least {} values per side ({} for PSI). PSI bins: the reference's deciles, empty bins counted as {:g}.</p>\n",
                   folders(info.reference_folders), folders(info.current_folders), c.thresholds.psi_warn,
                   c.thresholds.psi_alarm, c.thresholds.ks_alarm_p, c.min_samples, c.thresholds.psi_min_samples, kPsiEpsilon);
  h += "<h2>Quantities</h2>\n<div class=\"wrap\"><table><tr><th>quantity</th><th>status</th><th>n</th><th>ref n</th><th>mean</th>"
       "<th>ref mean</th><th>PSI</th><th>KS D</th><th>KS p</th><th>why</th></tr>\n";
  for (const auto& d : c.drifts) {
    std::string cls = d.status == Status::Alarm ? "alarm" : d.status == Status::Warn ? "warn" : d.status == Status::TooFew ? "too-few" : "";
    h += fmt::format("<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
                     "<td>{}</td><td>{}</td></tr>\n",
                     cls, html_escape(d.quantity), status_name(d.status), d.n, d.reference_n, number(d.mean), number(d.reference_mean),
                     number(d.psi), number(d.ks_d), number(d.ks_p), html_escape(d.why));
  }
  h += "</table></div>\n<h2>Needs review over time</h2>\n";
  if (c.review_over_time.empty()) {
    h += "<p>No current study has a <code>qa</code> section: the share of studies that need review is not known.</p>\n";
  } else {
    h += "<div class=\"wrap\"><table><tr><th>up to (UTC)</th><th>studies</th><th>needs review</th><th>share</th></tr>\n";
    for (const auto& p : c.review_over_time)
      h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0f}%</td></tr>\n", utc(p.time), p.studies, p.flagged,
                       100.0 * double(p.flagged) / double(p.studies));
    h += "</table></div>\n";
    if (c.reference_review_share) h += fmt::format("<p>Reference share: {:.0f}%.</p>\n", 100 * *c.reference_review_share);
  }
  h += "<h2>Figures</h2>\n<div class=\"figs\">\n";
  for (const auto& f : figures) {
    h += "<figure>";
    if (!f.png.empty()) h += "<img alt=\"" + html_escape(f.title) + "\" src=\"data:image/png;base64," + base64(f.png) + "\">";
    if (!f.svg.empty() && f.png.empty()) h += f.svg;
    h += "<figcaption>" + html_escape(f.title) + "</figcaption></figure>\n";
  }
  h += "</div>\n";
  h += "<h2>Studies</h2>\n<details><summary>" + std::to_string(info.reference.size()) + " reference and " +
       std::to_string(info.current.size()) + " current studies, in time order</summary>\n<div class=\"wrap\"><table>"
       "<tr><th>cohort</th><th>id</th><th>time (UTC)</th><th>from</th><th>report</th></tr>\n";
  for (const auto* side : {&info.reference, &info.current})
    for (const auto& s : *side)
      h += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n", side == &info.reference ? "reference" : "current",
                       html_escape(s.id), utc(s.time), html_escape(s.time_source), html_escape(s.report.string()));
  h += "</table></div></details>\n";
  if (!info.notes.empty()) {
    h += "<h2>Notes</h2>\n<ul>\n";
    for (const auto& n : info.notes) h += "<li>" + html_escape(n) + "</li>\n";
    h += "</ul>\n";
  }
  h += fmt::format("<p><small>sagitta {}</small></p>\n</body></html>\n", html_escape(info.version));
  return h;
}

}  // namespace sagitta::monitor

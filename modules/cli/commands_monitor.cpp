// `sagitta monitor`: drift of cohort results against a reference cohort (sagitta::monitor), with
// PNG figures from VTK's charts (sagitta::viewer) when a display is there and SVG ones otherwise.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <iostream>

#include "command.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/monitor/monitor.h"
#include "sagitta/monitor/statistics.h"
#include "sagitta/viewer/charts.h"
#include "sagitta/viewer/display.h"
#include "version.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace mon = sagitta::monitor;
namespace vw = sagitta::viewer;
namespace {

CommandSpec monitor_spec() {
  CommandSpec s = command_spec("monitor", "Sagitta Monitor",
      "Drift of a cohort's results against a reference cohort: per-label volumes, per-structure confidence, input "
      "statistics and needs_review from every OUT/<id>/report.json of `sagitta segment --cohort` output folders; the "
      "population stability index and the Kolmogorov-Smirnov test per quantity, monitor.csv, PNG figures and one "
      "self-contained monitor.html. Exit 3 when a quantity alarms.");
  Parameter inputs = positional("inputs", ParamType::Directory, 0, "Cohort outputs",
                                "Output folders of `sagitta segment --cohort` (the current cohort)");
  inputs.multiple = true;
  inputs.required = true;
  Parameter reference = parameter("reference", ParamType::Directory, "reference", "", "Reference",
                                  "The reference cohort's output folder (default: the first input folder when several "
                                  "are given, else the earlier half of the studies in time)");
  reference.channel = Channel::Input;
  Parameter out = parameter("output", ParamType::Directory, "output", "", "Output folder",
                            "Where monitor.csv, studies.csv, monitor.html and plots/*.png go");
  out.flag = "o";
  out.required = true;
  out.channel = Channel::Output;
  Parameter psi_warn = ranged(parameter("psi_warn", ParamType::Float, "psi-warn", "0.1", "PSI warning", "PSI above this warns"), 0);
  Parameter psi_alarm = ranged(parameter("psi_alarm", ParamType::Float, "psi-alarm", "0.2", "PSI alarm", "PSI above this alarms"), 0);
  Parameter ks_p = ranged(parameter("ks_alarm_p", ParamType::Float, "ks-alarm-p", "0.01", "KS alarm p-value",
                                    "A Kolmogorov-Smirnov p-value below this alarms"), 0, 1);
  Parameter psi_min = ranged(parameter("psi_min_samples", ParamType::Integer, "psi-min-samples", "200", "PSI minimum values",
                                       "PSI warns and alarms only with at least this many values on each side (by chance "
                                       "two samples of one distribution give about 9 (1/n + 1/m))"), 1);
  Parameter min_samples = ranged(parameter("min_samples", ParamType::Integer, "min-samples", "3", "Minimum values",
                                           "Quantities with fewer values on a side are reported, never alarmed"), 1);
  Parameter window = ranged(parameter("review_window", ParamType::Integer, "review-window", "10", "Review window",
                                      "Studies per point of the needs_review share over time"), 1);
  Parameter no_png = switch_option("no_png", "no-png", "No PNG", "Draw the figures as inline SVG only (no display needed)");
  s.groups.push_back({"Input", "", {inputs, reference}});
  s.groups.push_back({"Output", "", {out, no_png}});
  s.groups.push_back({"Thresholds", "", {psi_warn, psi_alarm, ks_p, psi_min, min_samples, window}, true});
  return s;
}

std::string file_name(const std::string& quantity) {
  std::string s;
  for (char c : quantity) s += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_';
  return s;
}

constexpr std::array<unsigned char, 3> kReference{76, 114, 176}, kCurrent{221, 132, 82};

std::vector<vw::ChartRequest> charts_of(const mon::Drift& d) {
  vw::ChartRequest hist{d.quantity + ": distribution", "bin (the reference's deciles)", "share of studies", {}, 480, 300};
  const auto edges = mon::decile_edges(d.reference);
  const auto r = mon::bin_shares(d.reference, edges), c = mon::bin_shares(d.current, edges);
  vw::ChartSeries rs{"reference", {}, r, kReference, vw::ChartSeries::Kind::Bars}, cs{"current", {}, c, kCurrent, vw::ChartSeries::Kind::Bars};
  for (std::size_t k = 0; k < r.size(); ++k) rs.x.push_back(double(k + 1)), cs.x.push_back(double(k + 1));
  hist.series = {rs, cs};
  vw::ChartRequest time{d.quantity + ": over time", "study (time order)", d.quantity, {}, 480, 300};
  vw::ChartSeries rt{"reference", {}, d.reference, kReference, vw::ChartSeries::Kind::Points};
  vw::ChartSeries ct{"current", {}, d.current, kCurrent, vw::ChartSeries::Kind::Points};
  for (std::size_t k = 0; k < d.reference.size(); ++k) rt.x.push_back(double(k + 1));
  for (std::size_t k = 0; k < d.current.size(); ++k) ct.x.push_back(double(d.reference.size() + k + 1));
  time.series = {rt, ct};
  return {hist, time};
}

int run_monitor(const Arguments& a) {
  std::vector<std::string> folders = a.list("inputs");
  if (folders.empty()) throw UsageError("give the output folders of `sagitta segment --cohort` to monitor");
  mon::Thresholds t{a.real("psi_warn"), a.real("psi_alarm"), a.real("ks_alarm_p"), std::size_t(a.integer("psi_min_samples"))};
  if (t.psi_warn > t.psi_alarm) throw UsageError("--psi-warn must not exceed --psi-alarm");
  std::string reference_folder = a.text("reference");
  if (reference_folder.empty() && folders.size() > 1) reference_folder = folders.front(), folders.erase(folders.begin());

  mon::PageInfo info;
  info.version = kVersion;
  auto read = [&](const std::string& folder, std::vector<mon::Study>& into) {
    mon::Batch b = mon::read_batch(folder);
    for (const auto& line : b.skipped) {
      std::cerr << "sagitta monitor: " << line << std::endl;
      info.notes.push_back(line);
    }
    into.insert(into.end(), b.studies.begin(), b.studies.end());
  };
  std::vector<mon::Study> reference, current;
  for (const auto& f : folders) read(f, current);
  auto by_time = [](const mon::Study& x, const mon::Study& y) { return x.time != y.time ? x.time < y.time : x.id < y.id; };
  std::stable_sort(current.begin(), current.end(), by_time);
  if (!reference_folder.empty()) {
    read(reference_folder, reference);
    std::stable_sort(reference.begin(), reference.end(), by_time);
    info.reference_folders = {reference_folder};
    info.current_folders = folders;
  } else {  // one folder: its earlier half is the reference
    const auto half = current.begin() + std::ptrdiff_t(current.size() / 2);
    reference.assign(current.begin(), half);
    current.erase(current.begin(), half);
    info.reference_folders = {folders.front() + " (earlier half in time)"};
    info.current_folders = {folders.front() + " (later half)"};
  }
  const mon::Comparison c = mon::compare(reference, current, t, std::size_t(a.integer("min_samples")), std::size_t(a.integer("review_window")));

  StagedOutputs out(a.text("output"));
  std::vector<mon::Figure> figures;
  std::string png_skipped = a.flag("no_png") ? "--no-png" : vw::display_available() ? "" : "no X display (run under xvfb-run -a)";
  std::size_t pngs = 0;
  // Figures: alarms first, then warnings, then the rest (each group by name).
  std::vector<const mon::Drift*> order;
  for (const auto& d : c.drifts) order.push_back(&d);
  auto rank = [](mon::Status s) { return s == mon::Status::Alarm ? 0 : s == mon::Status::Warn ? 1 : 2; };
  std::stable_sort(order.begin(), order.end(), [&](const mon::Drift* x, const mon::Drift* y) { return rank(x->status) < rank(y->status); });
  for (const mon::Drift* drift : order) {
    const mon::Drift& d = *drift;
    if (d.status == mon::Status::TooFew && (d.reference.empty() || d.current.empty())) continue;
    const auto charts = charts_of(d);
    const std::string svgs[2] = {mon::svg_histogram(d), mon::svg_series(d)};
    const char* suffix[2] = {"distribution", "time"};
    for (int k = 0; k < 2; ++k) {
      mon::Figure f{d.quantity, charts[std::size_t(k)].title, "", svgs[k]};
      if (png_skipped.empty()) {
        try {
          f.png = vw::render_chart_png(charts[std::size_t(k)]);
          std::ofstream(out.add("plots/" + file_name(d.quantity) + "_" + suffix[k] + ".png"), std::ios::binary) << f.png;
          ++pngs;
        } catch (const sagitta::Error& e) {
          png_skipped = e.what();
        }
      }
      figures.push_back(std::move(f));
    }
  }
  // The share of studies needing review over time (the page's table has the same numbers).
  if (png_skipped.empty() && !c.review_over_time.empty()) {
    vw::ChartRequest review{"needs_review: share over time", fmt::format("window of {} studies (time order)", a.integer("review_window")),
                            "share needing review", {}, 480, 300};
    vw::ChartSeries cs{"current", {}, {}, kCurrent, vw::ChartSeries::Kind::Line};
    for (std::size_t k = 0; k < c.review_over_time.size(); ++k) {
      cs.x.push_back(double(k + 1));
      cs.y.push_back(double(c.review_over_time[k].flagged) / double(c.review_over_time[k].studies));
    }
    if (cs.x.size() < 2) cs.kind = vw::ChartSeries::Kind::Points;  // a line needs two points
    review.series.push_back(cs);
    if (c.reference_review_share)
      review.series.push_back({"reference", {0.5, double(cs.x.size()) + 0.5}, {*c.reference_review_share, *c.reference_review_share},
                               kReference, vw::ChartSeries::Kind::Line});
    try {
      mon::Figure f{"needs_review", review.title, vw::render_chart_png(review), ""};
      std::ofstream(out.add("plots/needs_review_share.png"), std::ios::binary) << f.png;
      ++pngs;
      figures.insert(figures.begin(), std::move(f));
    } catch (const sagitta::Error& e) {
      png_skipped = e.what();
    }
  }
  if (!png_skipped.empty()) {
    const std::string note = "PNG plots skipped (" + png_skipped + "): the page has SVG figures instead";
    std::cerr << "sagitta monitor: " << note << std::endl;
    info.notes.push_back(note);
  }
  info.reference = reference;
  info.current = current;
  write_text_atomically(out.add("monitor.csv"), mon::to_csv(c));
  write_text_atomically(out.add("studies.csv"), mon::to_studies_csv(reference, current));
  write_text_atomically(out.add("monitor.html"), mon::to_html(c, figures, info));
  out.commit();

  fmt::print("{} reference and {} current studies, {} quantities: {} alarms, {} warnings; wrote {} ({} PNG plots)\n",
             reference.size(), current.size(), c.drifts.size(), c.alarms, c.warnings, (out.folder() / "monitor.html").string(), pngs);
  for (const auto& d : c.drifts)
    if (d.status == mon::Status::Alarm || d.status == mon::Status::Warn)
      fmt::print("  {:<5} {}: {}\n", mon::status_name(d.status), d.quantity, d.why);
  if (c.alarms) {
    std::cerr << fmt::format("sagitta monitor: {} quantit{} drifted beyond the alarm thresholds (see monitor.csv)", c.alarms,
                             c.alarms == 1 ? "y" : "ies")
              << std::endl;
    return kExitData;
  }
  return kExitOk;
}

}  // namespace

std::vector<Command> monitor_commands() { return {{monitor_spec(), run_monitor}}; }

}  // namespace sagitta::cli

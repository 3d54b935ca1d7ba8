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

vw::ChartRequest review_chart(const mon::Comparison& c, long window) {
  vw::ChartRequest review{"needs_review: share over time", fmt::format("window of {} studies (time order)", window),
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
  return review;
}

// The page's figures, alarms first, then warnings, then the rest: PNGs (also written to plots/)
// while a display renders them, inline SVG always. `skipped` says why PNGs were not rendered.
struct Figures {
  std::vector<mon::Figure> list;
  std::size_t pngs = 0;
  std::string skipped;

  void png(mon::Figure& f, const vw::ChartRequest& chart, StagedOutputs& out, const std::string& name) {
    if (!skipped.empty()) return;
    try {
      f.png = vw::render_chart_png(chart);
      std::ofstream(out.add("plots/" + name + ".png"), std::ios::binary) << f.png;
      ++pngs;
    } catch (const sagitta::Error& e) {
      skipped = e.what();
    }
  }

  void draw(const mon::Comparison& c, long review_window, StagedOutputs& out) {
    if (!c.review_over_time.empty()) {
      mon::Figure f{"needs_review", "needs_review: share over time", "", ""};
      png(f, review_chart(c, review_window), out, "needs_review_share");
      if (!f.png.empty()) list.push_back(std::move(f));  // without PNG the page's table shows it
    }
    std::vector<const mon::Drift*> order;
    for (const auto& d : c.drifts) order.push_back(&d);
    auto rank = [](mon::Status s) { return s == mon::Status::Alarm ? 0 : s == mon::Status::Warn ? 1 : 2; };
    std::stable_sort(order.begin(), order.end(), [&](const mon::Drift* x, const mon::Drift* y) { return rank(x->status) < rank(y->status); });
    for (const mon::Drift* d : order) {
      if (d->reference.empty() || d->current.empty()) continue;
      const auto charts = charts_of(*d);
      mon::Figure distribution{d->quantity, charts[0].title, "", mon::svg_histogram(*d)};
      png(distribution, charts[0], out, file_name(d->quantity) + "_distribution");
      mon::Figure time{d->quantity, charts[1].title, "", mon::svg_series(*d)};
      png(time, charts[1], out, file_name(d->quantity) + "_time");
      list.push_back(std::move(distribution));
      list.push_back(std::move(time));
    }
  }
};

int run_monitor(const Arguments& a) {
  std::vector<std::string> folders = a.list("inputs");
  if (folders.empty()) throw UsageError("give the output folders of `sagitta segment --cohort` to monitor");
  mon::Thresholds t{a.real("psi_warn"), a.real("psi_alarm"), a.real("ks_alarm_p"), std::size_t(a.integer("psi_min_samples"))};
  if (t.psi_warn > t.psi_alarm) throw UsageError("--psi-warn must not exceed --psi-alarm");
  std::string reference_folder = a.text("reference");
  if (reference_folder.empty() && folders.size() > 1) reference_folder = folders.front(), folders.erase(folders.begin());

  mon::PageInfo info;
  info.version = kVersion;
  auto read = [&](const std::vector<std::string>& list, std::vector<mon::Study>& into) {
    for (const auto& folder : list) {
      mon::Batch b = mon::read_batch(folder);
      for (const auto& line : b.skipped) {
        std::cerr << "sagitta monitor: " << line << std::endl;
        info.notes.push_back(line);
      }
      into.insert(into.end(), b.studies.begin(), b.studies.end());
    }
    std::stable_sort(into.begin(), into.end(), [](const mon::Study& x, const mon::Study& y) { return x.time != y.time ? x.time < y.time : x.id < y.id; });
  };
  std::vector<mon::Study> reference, current;
  read(folders, current);
  if (!reference_folder.empty()) {
    read({reference_folder}, reference);
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
  Figures figures;
  figures.skipped = a.flag("no_png") ? "--no-png" : vw::display_available() ? "" : "no X display (run under xvfb-run -a)";
  figures.draw(c, a.integer("review_window"), out);
  if (!figures.skipped.empty()) {
    const std::string note = "PNG plots skipped (" + figures.skipped + "): the page has SVG figures instead";
    std::cerr << "sagitta monitor: " << note << std::endl;
    info.notes.push_back(note);
  }
  info.reference = reference;
  info.current = current;
  write_text_atomically(out.add("monitor.csv"), mon::to_csv(c));
  write_text_atomically(out.add("studies.csv"), mon::to_studies_csv(reference, current));
  write_text_atomically(out.add("monitor.html"), mon::to_html(c, figures.list, info));
  out.commit();

  fmt::print("{} reference and {} current studies, {} quantities: {} alarms, {} warnings; wrote {} ({} PNG plots)\n",
             reference.size(), current.size(), c.drifts.size(), c.alarms, c.warnings, (out.folder() / "monitor.html").string(),
             figures.pngs);
  for (const auto& d : c.drifts)
    if (d.status == mon::Status::Alarm || d.status == mon::Status::Warn)
      fmt::print("  {:<5} {}: {}\n", mon::status_name(d.status), d.quantity, d.why);
  if (!c.alarms) return kExitOk;
  std::cerr << fmt::format("sagitta monitor: {} quantit{} drifted beyond the alarm thresholds (see monitor.csv)", c.alarms,
                           c.alarms == 1 ? "y" : "ies")
            << std::endl;
  return kExitData;
}

}  // namespace

std::vector<Command> monitor_commands() { return {{monitor_spec(), run_monitor}}; }

}  // namespace sagitta::cli

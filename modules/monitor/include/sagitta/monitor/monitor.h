#pragma once
// `sagitta monitor`: drift of a cohort's results against a reference cohort. Reads the
// report.json of every study in batch output folders (`sagitta segment --cohort -o OUT`:
// OUT/<id>/report.json), turns each study into named quantities (per-label volumes, per-structure
// confidence, input statistics, needs_review), orders the studies in time, and compares every
// quantity's distribution with the reference's (PSI, Kolmogorov-Smirnov). Torch- and VTK-free:
// links the floor, nlohmann-json and fmt. docs/monitor.md describes the conventions.
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/core/error.h"

namespace sagitta::monitor {

// A report or folder that cannot be used (exit code 3 through the floor's policy).
class MonitorError : public sagitta::Error {
public:
  using sagitta::Error::Error;
};

struct Study {
  std::string id;                        // the report's batch.id, else the folder's name
  std::string batch;                     // the batch folder it came from
  std::filesystem::path report;          // its report.json
  double time = 0;                       // seconds since 1970 (UTC): study date/time, else report.json's mtime
  std::string time_source;               // "study date" or "report written"
  std::optional<bool> needs_review;      // qa.needs_review when the report has a qa section
  std::map<std::string, double> values;  // quantity name -> value (finite numbers only)
};

struct Batch {
  std::filesystem::path folder;
  std::vector<Study> studies;
  std::vector<std::string> skipped;  // one line per damaged or unusable report.json
};

// The quantities of one report (names as in monitor.csv): "volume_ml/<label>",
// "mean_probability/<structure>", "border_entropy/<structure>", "input/intensity_median",
// "input/intensity_p00_5", "input/intensity_p99_5", "input/spacing_mm[0..2]",
// "input/field_of_view_mm[0..2]", "needs_review". Spacing and field of view come from
// qa.input, else from the report's geometry (the label map is on the input's grid).
std::map<std::string, double> quantities(const nlohmann::json& report);

// Reads every <folder>/<id>/report.json (one level down; a report.json in `folder` itself is one
// study too). A report that cannot be parsed or is not a segment report is skipped with a line in
// Batch::skipped. Throws MonitorError when `folder` is missing, is not a folder, or holds no
// usable report. Studies come back in time order (ties: by id).
Batch read_batch(const std::filesystem::path& folder);

struct Thresholds {
  double psi_warn = 0.1, psi_alarm = 0.2;  // PSI above these: warn, alarm
  double ks_alarm_p = 0.01;                // KS p-value below this: alarm
  // PSI is judged only with at least this many values on each side: two samples of one
  // distribution give a PSI of about (bins - 1)(1/n + 1/m) by chance (0.09 at 200 against 200).
  std::size_t psi_min_samples = 200;
};

enum class Status { Ok, Warn, Alarm, TooFew };
const char* status_name(Status s);  // ok, warn, alarm, too few

struct Drift {
  std::string quantity;
  std::vector<double> reference, current;  // the values, studies in time order
  std::size_t n = 0, reference_n = 0;
  double mean = 0, reference_mean = 0;     // NaN when there are no values
  double psi = 0, ks_d = 0, ks_p = 1;
  Status status = Status::Ok;
  std::string why;                         // which threshold fired
};

// Share of needs_review over time: the current studies in time order, in windows of `window`.
struct ReviewPoint {
  double time = 0;          // of the window's last study
  std::size_t studies = 0, flagged = 0;
};

struct Comparison {
  std::vector<Drift> drifts;  // one per quantity seen in either cohort, sorted by name
  std::vector<ReviewPoint> review_over_time;
  std::optional<double> reference_review_share;  // nullopt when no reference study has qa
  std::size_t alarms = 0, warnings = 0;
  Thresholds thresholds;
  std::size_t min_samples = 0;
};

// Compares the current studies with the reference's, quantity by quantity. A quantity with fewer
// than `min_samples` values on either side is "too few" and raises nothing.
Comparison compare(const std::vector<Study>& reference, const std::vector<Study>& current, const Thresholds& t,
                   std::size_t min_samples = 3, std::size_t review_window = 10);

// monitor.csv: quantity,n,reference_n,mean,reference_mean,psi,ks_d,ks_p,status,why.
std::string to_csv(const Comparison& c);

// studies.csv: one row per study in time order, reference first: cohort (reference/current), id,
// batch folder, time (UTC, ISO 8601), time_source, then every quantity's value (empty when absent).
std::string to_studies_csv(const std::vector<Study>& reference, const std::vector<Study>& current);

// One picture of the page: a PNG (inlined as base64) and/or inline SVG markup.
struct Figure {
  std::string quantity;      // the Drift it shows ("" for the needs_review share)
  std::string title;
  std::string png;           // bytes; empty when not rendered
  std::string svg;           // markup; empty when not drawn
};

struct PageInfo {
  std::vector<std::string> reference_folders, current_folders;
  std::vector<std::string> notes;  // skipped reports, skipped plots
  std::string version;
  std::vector<Study> reference, current;  // listed in the page (id, time and where it came from)
};

// The self-contained monitor.html: a viewport meta tag and a fluid layout, the table, and the
// figures inlined (data: URIs), no network.
std::string to_html(const Comparison& c, const std::vector<Figure>& figures, const PageInfo& info);

// Small inline SVG figures drawn without any library: the reference's and current's histograms
// over the PSI bins, and the values in time order.
std::string svg_histogram(const Drift& d);
std::string svg_series(const Drift& d);

}  // namespace sagitta::monitor

// Comparing a cohort with a reference, and the monitor's CSV (declarations: monitor.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <set>

#include "sagitta/monitor/monitor.h"
#include "sagitta/monitor/statistics.h"

namespace sagitta::monitor {

const char* status_name(Status s) {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::Warn: return "warn";
    case Status::Alarm: return "alarm";
    case Status::TooFew: return "too few";
  }
  return "?";
}

namespace {

std::vector<double> values_of(const std::vector<Study>& studies, const std::string& quantity) {
  std::vector<double> v;
  for (const auto& s : studies) {
    auto it = s.values.find(quantity);
    if (it != s.values.end()) v.push_back(it->second);
  }
  return v;
}

std::string number(double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : ""; }

std::string iso_time(double seconds) {
  const std::time_t t = std::time_t(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace

Comparison compare(const std::vector<Study>& reference, const std::vector<Study>& current, const Thresholds& t,
                   std::size_t min_samples, std::size_t review_window) {
  Comparison c;
  c.thresholds = t;
  c.min_samples = min_samples;
  std::set<std::string> names;
  for (const auto* side : {&reference, &current})
    for (const auto& s : *side)
      for (const auto& [name, v] : s.values) names.insert(name);
  for (const auto& name : names) {
    Drift d;
    d.quantity = name;
    d.reference = values_of(reference, name);
    d.current = values_of(current, name);
    d.n = d.current.size();
    d.reference_n = d.reference.size();
    d.mean = mean(d.current);
    d.reference_mean = mean(d.reference);
    if (d.n < min_samples || d.reference_n < min_samples || d.n == 0 || d.reference_n == 0) {
      d.status = Status::TooFew;
      d.psi = d.ks_d = std::nan("");
      d.ks_p = std::nan("");
      d.why = fmt::format("fewer than {} values on a side", min_samples);
    } else {
      d.psi = population_stability_index(d.reference, d.current);
      const KsResult ks = ks_two_sample(d.reference, d.current);
      d.ks_d = ks.statistic;
      d.ks_p = ks.p_value;
      std::vector<std::string> why;
      const bool judge_psi = d.n >= t.psi_min_samples && d.reference_n >= t.psi_min_samples;
      if (judge_psi && d.psi > t.psi_alarm) why.push_back(fmt::format("PSI {:.3g} > {:g}", d.psi, t.psi_alarm));
      if (std::isfinite(d.ks_p) && d.ks_p < t.ks_alarm_p) why.push_back(fmt::format("KS p {:.3g} < {:g}", d.ks_p, t.ks_alarm_p));
      if (!why.empty()) {
        d.status = Status::Alarm;
      } else if (judge_psi && d.psi > t.psi_warn) {
        d.status = Status::Warn;
        why.push_back(fmt::format("PSI {:.3g} > {:g}", d.psi, t.psi_warn));
      }
      if (!judge_psi && d.psi > t.psi_warn)
        why.push_back(fmt::format("PSI {:.3g} not judged: fewer than {} values on a side", d.psi, t.psi_min_samples));
      for (std::size_t k = 0; k < why.size(); ++k) d.why += (k ? "; " : "") + why[k];
    }
    c.alarms += d.status == Status::Alarm;
    c.warnings += d.status == Status::Warn;
    c.drifts.push_back(std::move(d));
  }
  std::size_t in_window = 0, flagged = 0;
  for (const auto& s : current) {
    if (!s.needs_review) continue;
    ++in_window;
    flagged += *s.needs_review;
    if (in_window == std::max<std::size_t>(review_window, 1)) {
      c.review_over_time.push_back({s.time, in_window, flagged});
      in_window = flagged = 0;
    }
  }
  if (in_window) {
    double last = 0;
    for (const auto& s : current)
      if (s.needs_review) last = s.time;
    c.review_over_time.push_back({last, in_window, flagged});
  }
  std::size_t ref_n = 0, ref_flagged = 0;
  for (const auto& s : reference)
    if (s.needs_review) ++ref_n, ref_flagged += *s.needs_review;
  if (ref_n) c.reference_review_share = double(ref_flagged) / double(ref_n);
  return c;
}

std::string to_csv(const Comparison& c) {
  std::string out = "quantity,n,reference_n,mean,reference_mean,psi,ks_d,ks_p,status,why\n";
  for (const auto& d : c.drifts)
    out += fmt::format("{},{},{},{},{},{},{},{},{},{}\n", csv_cell(d.quantity), d.n, d.reference_n, number(d.mean),
                       number(d.reference_mean), number(d.psi), number(d.ks_d), number(d.ks_p), status_name(d.status),
                       csv_cell(d.why));
  return out;
}

std::string to_studies_csv(const std::vector<Study>& reference, const std::vector<Study>& current) {
  std::set<std::string> names;
  for (const auto* side : {&reference, &current})
    for (const auto& s : *side)
      for (const auto& [name, v] : s.values) names.insert(name);
  std::string out = "cohort,id,batch,time,time_source";
  for (const auto& n : names) out += "," + csv_cell(n);
  out += "\n";
  for (const auto* side : {&reference, &current})
    for (const auto& s : *side) {
      out += fmt::format("{},{},{},{},{}", side == &reference ? "reference" : "current", csv_cell(s.id), csv_cell(s.batch),
                         iso_time(s.time), s.time_source);
      for (const auto& n : names) {
        auto it = s.values.find(n);
        out += "," + (it == s.values.end() ? std::string() : fmt::format("{:.10g}", it->second));
      }
      out += "\n";
    }
  return out;
}

}  // namespace sagitta::monitor

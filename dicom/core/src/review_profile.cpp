// Training profiles and review thresholds of model cards (the declarations and their contract:
// sagitta/core/review_profile.h).
#include "sagitta/core/review_profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "sagitta/core/error.h"

namespace sagitta {
namespace {

using json = nlohmann::json;

// Every threshold by its JSON name, in the order reports list them.
const std::pair<const char*, std::optional<double> ReviewThresholds::*> kThresholds[] = {
    {"min_mean_probability", &ReviewThresholds::min_mean_probability},
    {"max_border_entropy", &ReviewThresholds::max_border_entropy},
    {"max_intensity_z", &ReviewThresholds::max_intensity_z},
    {"spacing_factor", &ReviewThresholds::spacing_factor},
    {"extent_factor", &ReviewThresholds::extent_factor},
    {"max_components", &ReviewThresholds::max_components},
    {"max_tta_disagreement", &ReviewThresholds::max_tta_disagreement},
    {"max_fold_disagreement", &ReviewThresholds::max_fold_disagreement},
};

json triple(const std::optional<std::array<double, 3>>& v) { return v ? json(*v) : json(nullptr); }

std::optional<std::array<double, 3>> triple_from(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  const auto v = j[key].get<std::vector<double>>();
  if (v.size() != 3) throw Error(fmt::format("training_profile.{}: 3 numbers (x y z) expected", key));
  for (double x : v)
    if (!std::isfinite(x) || x <= 0) throw Error(fmt::format("training_profile.{}: positive numbers expected", key));
  return std::array<double, 3>{v[0], v[1], v[2]};
}

// numpy.percentile's default ("linear"): position q/100 x (n - 1) between order statistics.
double percentile(std::vector<float>& v, double q) {
  const double pos = q / 100.0 * double(v.size() - 1);
  const auto lo = std::size_t(std::floor(pos));
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(lo), v.end());
  const double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + std::ptrdiff_t(lo) + 1, v.end());
  return a + (pos - double(lo)) * (b - a);
}

}  // namespace

ReviewThresholds review_defaults() {
  ReviewThresholds t;
  t.min_mean_probability = 0.85;
  t.max_border_entropy = 0.6;
  t.max_intensity_z = 3.0;
  t.spacing_factor = 2.0;
  t.extent_factor = 1.5;
  t.max_components = 10;
  t.max_tta_disagreement = 0.1;
  t.max_fold_disagreement = 0.1;
  t.source = "default";
  return t;
}

ReviewThresholds merged(const ReviewThresholds& base, const ReviewThresholds& overrides) {
  ReviewThresholds out = base;
  bool any = false;
  for (const auto& [name, field] : kThresholds)
    if (overrides.*field) {
      out.*field = overrides.*field;
      any = true;
    }
  if (any && !overrides.source.empty()) out.source = base.source.empty() ? overrides.source : base.source + " + " + overrides.source;
  return out;
}

void set_threshold(ReviewThresholds& t, const std::string& name, double value) {
  for (const auto& [key, field] : kThresholds)
    if (name == key) {
      if (!std::isfinite(value) || value < 0) throw Error(fmt::format("review threshold {}: a number >= 0 expected", name));
      t.*field = value;
      return;
    }
  std::string known;
  for (const auto& [key, field] : kThresholds) known += std::string(known.empty() ? "" : ", ") + key;
  throw Error(fmt::format("unknown review threshold '{}' (known: {})", name, known));
}

json to_json(const IntensitySummary& s) {
  return {{"mean", s.mean}, {"std", s.std}, {"p00_5", s.p00_5}, {"median", s.median}, {"p99_5", s.p99_5}};
}

json to_json(const TrainingProfile& p) {
  json fg = json::array();
  for (const auto& s : p.foreground) fg.push_back(to_json(s));
  return {{"source", p.source},          {"modality", p.modality},       {"body_part", p.body_part},
          {"spacing_min", triple(p.spacing_min)}, {"spacing_max", triple(p.spacing_max)},
          {"extent_min", triple(p.extent_min)},   {"extent_max", triple(p.extent_max)},
          {"foreground_intensity", fg},  {"cases", p.cases}};
}

json to_json(const ReviewThresholds& t) {
  json j = json::object();
  for (const auto& [name, field] : kThresholds)
    if (t.*field) j[name] = *(t.*field);
  if (!t.source.empty()) j["source"] = t.source;
  return j;
}

TrainingProfile training_profile_from_json(const json& j) {
  if (!j.is_object()) throw Error("training_profile: a JSON object expected");
  TrainingProfile p;
  p.source = j.value("source", std::string());
  p.modality = j.value("modality", std::string());
  p.body_part = j.value("body_part", std::string());
  p.spacing_min = triple_from(j, "spacing_min");
  p.spacing_max = triple_from(j, "spacing_max");
  p.extent_min = triple_from(j, "extent_min");
  p.extent_max = triple_from(j, "extent_max");
  if (j.contains("foreground_intensity"))
    for (const auto& s : j["foreground_intensity"]) {
      IntensitySummary v{s.at("mean").get<double>(), s.at("std").get<double>(), s.at("p00_5").get<double>(),
                         s.at("median").get<double>(), s.at("p99_5").get<double>()};
      if (!(v.std >= 0) || !(v.p00_5 <= v.median && v.median <= v.p99_5))
        throw Error("training_profile.foreground_intensity: needs std >= 0 and p00_5 <= median <= p99_5");
      p.foreground.push_back(v);
    }
  p.cases = j.value("cases", 0);
  return p;
}

ReviewThresholds review_thresholds_from_json(const json& j) {
  if (!j.is_object()) throw Error("review_thresholds: a JSON object expected");
  ReviewThresholds t;
  for (const auto& [key, value] : j.items()) {
    if (key == "source") {
      t.source = value.get<std::string>();
      continue;
    }
    if (!value.is_number()) throw Error(fmt::format("review_thresholds.{}: a number expected", key));
    set_threshold(t, key, value.get<double>());
  }
  if (t.source.empty()) t.source = "card";
  return t;
}

IntensitySummary summarize(std::vector<float>& values) {
  IntensitySummary s;
  if (values.empty()) return s;
  const double n = double(values.size());
  const double mean = std::accumulate(values.begin(), values.end(), 0.0) / n;
  double ss = 0;
  for (float v : values) ss += (v - mean) * (v - mean);
  s.mean = mean;
  s.std = std::sqrt(ss / n);
  s.p00_5 = percentile(values, 0.5);
  s.median = percentile(values, 50);
  s.p99_5 = percentile(values, 99.5);
  return s;
}

}  // namespace sagitta

// A study's review: input checks against the card's training profile and per-structure flags (the
// declarations and their contract: sagitta/segmentation/review.h).
#include "sagitta/segmentation/review.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace {

using json = nlohmann::json;

// At most this many voxels enter an intensity summary (an even stride over the set): the
// percentiles of a 100 M-voxel CT move by less than its intensity resolution.
constexpr std::size_t kMaxSamples = 4'000'000;

// Intensities of `image` where `mask` is non-zero (every voxel without a mask), evenly thinned.
std::vector<float> samples(const Image& image, const LabelImage* mask) {
  const std::size_t n = image.GetBufferedRegion().GetNumberOfPixels();
  const float* v = image.GetBufferPointer();
  const std::uint16_t* m = mask ? mask->GetBufferPointer() : nullptr;
  std::size_t count = n;
  if (m) count = std::size_t(std::count_if(m, m + n, [](std::uint16_t l) { return l != 0; }));
  const std::size_t stride = std::max<std::size_t>(1, (count + kMaxSamples - 1) / kMaxSamples);
  std::vector<float> out;
  out.reserve(std::min(count, kMaxSamples) + 1);
  for (std::size_t i = 0, k = 0; i < n; ++i) {
    if (m && m[i] == 0) continue;
    if (k++ % stride == 0 && std::isfinite(v[i])) out.push_back(v[i]);
  }
  return out;
}

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string triple_text(const std::array<double, 3>& v) { return fmt::format("{:.3g} x {:.3g} x {:.3g}", v[0], v[1], v[2]); }

struct Review {
  json flags = json::array(), skipped = json::array();
  void flag(json& into, const std::string& check, const std::string& subject, json measured, const std::string& expected,
            const std::string& what) {
    into.push_back({{"check", check}, {"subject", subject}, {"measured", std::move(measured)}, {"expected", expected},
                    {"what", what}});
  }
  void skip(const std::string& check, const std::string& why) { skipped.push_back({{"check", check}, {"why", why}}); }
};

// Spacing or field of view of the input against the profile's range, widened by `factor`.
void check_range(Review& r, const char* check, const char* what, const std::array<double, 3>& value,
                 const std::optional<std::array<double, 3>>& lo, const std::optional<std::array<double, 3>>& hi,
                 double factor) {
  if (!lo || !hi) {
    r.skip(check, fmt::format("the card's training profile has no {} range", what));
    return;
  }
  static const char* axis[] = {"x", "y", "z"};
  for (std::size_t a = 0; a < 3; ++a) {
    const double low = (*lo)[a] / factor, high = (*hi)[a] * factor;
    if (value[a] >= low && value[a] <= high) continue;
    r.flag(r.flags, check, "input", value[a], fmt::format("[{:.3g}, {:.3g}] mm", low, high),
           fmt::format("{} along {} is {:.3g} mm, outside the training data's {:.3g}..{:.3g} mm widened by a factor "
                       "of {:.3g} ({})",
                       what, axis[a], value[a], (*lo)[a], (*hi)[a], factor, triple_text(value)));
  }
}

// Input checks: modality, body part, spacing, field of view, intensities inside the structures.
void check_input(Review& r, json& input, const Segmentation& result, const std::vector<Image::Pointer>& inputs,
                 const ModelCard& card, const ReviewContext& context, const ReviewThresholds& t) {
  const Image& image = *inputs.front();
  const auto size = image.GetLargestPossibleRegion().GetSize();
  std::array<double, 3> spacing{}, extent{};
  for (std::size_t a = 0; a < 3; ++a) spacing[a] = image.GetSpacing()[a], extent[a] = spacing[a] * double(size[a]);
  input["modality"] = context.modality;
  input["body_part"] = context.body_part;
  input["spacing_mm"] = spacing;
  input["field_of_view_mm"] = extent;
  auto all = samples(image, nullptr);
  input["intensity"] = to_json(summarize(all));
  json foreground = json::array();
  std::vector<IntensitySummary> fg;
  for (const auto& channel : inputs) {
    auto v = samples(*channel, result.labels.GetPointer());
    fg.push_back(summarize(v));
    foreground.push_back(v.empty() ? json(nullptr) : to_json(fg.back()));
  }
  input["foreground_intensity"] = foreground;

  const bool empty = std::all_of(result.statistics.begin(), result.statistics.end(),
                                 [](const LabelStatistics& s) { return s.value == 0 || s.voxels == 0; });
  if (empty)
    r.flag(r.flags, "empty", "input", 0, "at least one structure",
           "nothing was segmented: the field of view may not hold what the model looks for, or the input is not what "
           "it was trained on");

  if (!card.training_profile) {
    for (const char* c : {"modality", "body_part", "spacing", "field_of_view", "intensity"})
      r.skip(c, "the model card has no training profile (measure one with `sagitta calibrate`: a calibrated card, or "
                "for a model folder a review_profile.json given with --review-profile; `sagitta train` and nnU-Net "
                "folders bring theirs)");
    return;
  }
  const TrainingProfile& p = *card.training_profile;
  auto compare_text = [&](const char* check, const std::string& expected, const std::string& measured) {
    if (expected.empty()) return r.skip(check, fmt::format("the training profile does not name a {}", check));
    if (measured.empty()) return r.skip(check, fmt::format("the input does not say its {} (not DICOM)", check));
    if (upper(expected) != upper(measured))
      r.flag(r.flags, check, "input", measured, expected,
             fmt::format("the input's {} is {}; the model was trained on {}", check, measured, expected));
  };
  compare_text("modality", p.modality, context.modality);
  compare_text("body_part", p.body_part, context.body_part);
  check_range(r, "spacing", "the voxel spacing", spacing, p.spacing_min, p.spacing_max, *t.spacing_factor);
  check_range(r, "field_of_view", "the field of view", extent, p.extent_min, p.extent_max, *t.extent_factor);
  if (p.foreground.empty()) return r.skip("intensity", "the training profile has no intensity statistics");
  if (empty) return r.skip("intensity", "no segmented voxels to measure intensities in");
  for (std::size_t c = 0; c < std::min(fg.size(), p.foreground.size()); ++c) {
    const IntensitySummary& train = p.foreground[c];
    // Two rules: the median outside the range holding 99% of the training structures' voxels
    // (robust to a wide spread, e.g. air in a bowel label), or too many standard deviations away.
    const double m = fg[c].median;
    const double z = std::abs(m - train.median) / std::max(train.std, 1e-6);
    const bool outside = m < train.p00_5 || m > train.p99_5;
    if (!outside && z <= *t.max_intensity_z) continue;
    const std::string channel = c < card.channels.size() ? card.channels[c].name : std::to_string(c);
    r.flag(r.flags, "intensity", "input", m,
           fmt::format("within [{:.4g}, {:.4g}] and {:.4g} ± {:.3g} x {:.4g}", train.p00_5, train.p99_5, train.median,
                       *t.max_intensity_z, train.std),
           fmt::format("channel {}: the median intensity inside the segmented structures is {:.4g}; the training "
                       "data's is {:.4g}, 99% of its structures' voxels within {:.4g}..{:.4g} ({}{:.1f} standard "
                       "deviations away): the input may not be what the model was trained on",
                       channel, m, train.median, train.p00_5, train.p99_5, outside ? "outside that range, " : "", z));
  }
}

json number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// A structure with more than this share of its voxels outside the range that holds 99% of the
// training structures' voxels (channel 0) is flagged: something inside it is not tissue the model
// has seen (metal, a corrupted or replaced region, another modality). Fixed for now; docs/review.md.
constexpr double kMaxOutsideShare = 0.25;

// Per label value: the share of its voxels whose first-channel intensity lies outside [lo, hi].
std::map<int, double> outside_shares(const LabelImage& labels, const Image& image, double lo, double hi) {
  std::map<int, std::pair<std::size_t, std::size_t>> counts;  // value -> (outside, all)
  const std::size_t n = labels.GetBufferedRegion().GetNumberOfPixels();
  const std::uint16_t* l = labels.GetBufferPointer();
  const float* v = image.GetBufferPointer();
  for (std::size_t i = 0; i < n; ++i) {
    if (l[i] == 0) continue;
    auto& c = counts[l[i]];
    ++c.second;
    if (!(v[i] >= lo && v[i] <= hi)) ++c.first;
  }
  std::map<int, double> out;
  for (const auto& [value, c] : counts) out[value] = double(c.first) / double(c.second);
  return out;
}

// Per structure: confidence, border entropy, components, a face of the volume reached.
json check_structures(Review& r, const Segmentation& result, const Image& input, const ModelCard& card,
                      const ReviewThresholds& t) {
  json structures = json::array();
  const TrainingProfile* profile = card.training_profile ? &*card.training_profile : nullptr;
  std::map<int, double> outside;
  if (profile && !profile->foreground.empty())
    outside = outside_shares(*result.labels, input, profile->foreground[0].p00_5, profile->foreground[0].p99_5);
  else
    r.skip("outside_training_range", "the model card has no training intensities");
  for (const auto& s : result.statistics) {
    if (s.value == 0) continue;
    json flags = json::array();
    const auto c = std::find_if(result.confidence.begin(), result.confidence.end(),
                                [&](const StructureConfidence& k) { return k.value == s.value; });
    json j = {{"name", s.name}, {"value", s.value}, {"volume_ml", s.volume_ml}, {"components", s.components},
              {"touches_edge", s.touches_edge}};
    if (c != result.confidence.end()) {
      j["mean_probability"] = number(c->mean_probability);
      j["mean_entropy"] = number(c->mean_entropy);
      j["border_probability"] = number(c->border_probability);
      j["border_entropy"] = number(c->border_entropy);
      if (c->tta_disagreement) j["tta_disagreement"] = number(*c->tta_disagreement);
      if (c->fold_disagreement) j["fold_disagreement"] = number(*c->fold_disagreement);
    }
    if (s.voxels > 0) {
      if (c != result.confidence.end() && std::isfinite(c->mean_probability) && c->mean_probability < *t.min_mean_probability)
        r.flag(flags, "mean_probability", s.name, c->mean_probability, fmt::format(">= {:.3g}", *t.min_mean_probability),
               fmt::format("{}: the model's mean probability inside it is {:.3f}, below {:.3g}", s.name,
                           c->mean_probability, *t.min_mean_probability));
      if (c != result.confidence.end() && std::isfinite(c->border_entropy) && c->border_entropy > *t.max_border_entropy)
        r.flag(flags, "border_entropy", s.name, c->border_entropy, fmt::format("<= {:.3g}", *t.max_border_entropy),
               fmt::format("{}: the mean normalised entropy along its border is {:.3f}, above {:.3g} (an uncertain "
                           "outline)",
                           s.name, c->border_entropy, *t.max_border_entropy));
      if (c != result.confidence.end() && c->tta_disagreement && std::isfinite(*c->tta_disagreement) &&
          *c->tta_disagreement > *t.max_tta_disagreement)
        r.flag(flags, "tta_disagreement", s.name, *c->tta_disagreement, fmt::format("<= {:.3g}", *t.max_tta_disagreement),
               fmt::format("{}: on average {:.0f}% of the mirrored passes disagree with the averaged label inside it, "
                           "more than {:.3g}%",
                           s.name, 100 * *c->tta_disagreement, 100 * *t.max_tta_disagreement));
      if (c != result.confidence.end() && c->fold_disagreement && std::isfinite(*c->fold_disagreement) &&
          *c->fold_disagreement > *t.max_fold_disagreement)
        r.flag(flags, "fold_disagreement", s.name, *c->fold_disagreement, fmt::format("<= {:.3g}", *t.max_fold_disagreement),
               fmt::format("{}: on average {:.0f}% of the folds disagree with the ensemble's label inside it, more than "
                           "{:.3g}%",
                           s.name, 100 * *c->fold_disagreement, 100 * *t.max_fold_disagreement));
      if (double(s.components) > *t.max_components)
        r.flag(flags, "components", s.name, s.components, fmt::format("<= {:.0f}", *t.max_components),
               fmt::format("{}: {} separate pieces (6-connected), more than {:.0f}", s.name, s.components, *t.max_components));
      if (const auto o = outside.find(s.value); o != outside.end()) {
        j["outside_training_range"] = o->second;
        if (o->second > kMaxOutsideShare)
          r.flag(flags, "outside_training_range", s.name, o->second, fmt::format("<= {:.2g}", kMaxOutsideShare),
                 fmt::format("{}: {:.0f}% of its voxels have intensities outside {:.4g}..{:.4g}, the range of 99% of "
                             "the training structures' voxels (metal, a corrupted region or another kind of image?)",
                             s.name, 100 * o->second, profile->foreground[0].p00_5, profile->foreground[0].p99_5));
      }
      if (s.touches_edge)
        r.flag(flags, "cut_off", s.name, true, "inside the field of view",
               fmt::format("{}: it reaches a face of the volume, so the field of view may cut it off and its volume "
                           "({:.1f} mL) may be too small",
                           s.name, s.volume_ml));
    }
    j["needs_review"] = !flags.empty();
    j["flags"] = flags;
    structures.push_back(j);
  }
  return structures;
}

}  // namespace

json review(const Segmentation& result, const std::vector<Image::Pointer>& inputs, const ModelCard& card,
            const ReviewContext& context) {
  if (inputs.empty() || !result.labels) throw SegmentationError("review: no input or no labels");
  const ReviewThresholds t = merged(merged(review_defaults(), card.review_thresholds), context.overrides);
  Review r;
  json input = json::object();
  check_input(r, input, result, inputs, card, context, t);
  json structures = check_structures(r, result, *inputs.front(), card, t);
  if (result.confidence.empty()) r.skip("mean_probability", "the segmentation did not measure confidence");
  const bool measured = std::any_of(result.confidence.begin(), result.confidence.end(),
                                    [](const StructureConfidence& c) { return c.tta_disagreement.has_value(); });
  if (!context.mirrored)
    r.skip("tta_disagreement", "no test-time mirroring ran (--mirror)");
  else if (!measured)
    r.skip("tta_disagreement", "this pipeline averages the mirrored passes without keeping their disagreement (nnU-Net "
                               "folders, segment --explain) or the card allows no mirror axis");
  const bool folds_measured = std::any_of(result.confidence.begin(), result.confidence.end(),
                                          [](const StructureConfidence& c) { return c.fold_disagreement.has_value(); });
  if (!folds_measured)
    r.skip("fold_disagreement", card.folds.empty() ? "the model has one set of weights"
                                                   : "this pipeline averages the folds without keeping their decisions");
  bool any = !r.flags.empty();
  for (const auto& s : structures) any |= s["needs_review"].get<bool>();
  return {{"needs_review", any},
          {"thresholds", to_json(t)},
          {"flags", r.flags},
          {"skipped", r.skipped},
          {"input", input},
          {"structures", structures}};
}

TrainingProfile profile_of(const std::vector<std::vector<Image::Pointer>>& cases,
                           const std::vector<LabelImage::Pointer>& labels, const std::string& source) {
  if (cases.size() != labels.size() || cases.empty()) throw SegmentationError("profile: one label map per case needed");
  TrainingProfile p;
  p.source = source;
  p.cases = int(cases.size());
  std::array<double, 3> smin, smax, emin, emax;
  smin.fill(std::numeric_limits<double>::max()), emin.fill(std::numeric_limits<double>::max());
  smax.fill(0), emax.fill(0);
  std::vector<std::vector<float>> fg;
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const Image& image = *cases[k].front();
    const auto size = image.GetLargestPossibleRegion().GetSize();
    for (std::size_t a = 0; a < 3; ++a) {
      const double s = image.GetSpacing()[a], e = s * double(size[a]);
      smin[a] = std::min(smin[a], s), smax[a] = std::max(smax[a], s);
      emin[a] = std::min(emin[a], e), emax[a] = std::max(emax[a], e);
    }
    fg.resize(std::max(fg.size(), cases[k].size()));
    for (std::size_t c = 0; c < cases[k].size(); ++c) {
      if (cases[k][c]->GetBufferedRegion() != labels[k]->GetBufferedRegion())
        throw SegmentationError("profile: a label map is not on its image's grid");
      auto v = samples(*cases[k][c], labels[k].GetPointer());
      fg[c].insert(fg[c].end(), v.begin(), v.end());
    }
  }
  p.spacing_min = smin, p.spacing_max = smax, p.extent_min = emin, p.extent_max = emax;
  for (auto& v : fg) p.foreground.push_back(summarize(v));
  return p;
}

}  // namespace sagitta::segmentation

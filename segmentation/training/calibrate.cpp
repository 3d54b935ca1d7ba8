// Calibration of the review flags on labelled cases (the declarations and their contract:
// sagitta/segmentation/calibrate.h).
#include "sagitta/segmentation/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/review.h"
#include "sagitta/segmentation/segment.h"
#include "train_data.h"
#include "train_records.h"

namespace sagitta::segmentation {
namespace {

using json = nlohmann::json;

// One structure of one case, as the thresholds see it.
struct Sample {
  std::string case_name, structure;
  double mean_probability = NAN, border_entropy = NAN, dice = NAN;
  bool other_flags = false;  // flagged by a check the calibration does not tune
  bool bad() const { return dice < kBadDice; }
};

struct Score {
  double precision = NAN, recall = NAN, f1 = 0;
  int flagged = 0, bad = 0, caught = 0;
};

// With `all`, a structure counts as flagged by any check (its needs_review); without, by the two
// confidence checks alone (what the thresholds decide).
Score score(const std::vector<Sample>& samples, double min_p, double max_h, bool all) {
  Score s;
  for (const auto& x : samples) {
    const bool flag = (all && x.other_flags) || (std::isfinite(x.mean_probability) && x.mean_probability < min_p) ||
                      (std::isfinite(x.border_entropy) && x.border_entropy > max_h);
    s.flagged += flag, s.bad += x.bad(), s.caught += flag && x.bad();
  }
  if (s.flagged) s.precision = double(s.caught) / s.flagged;
  if (s.bad) s.recall = double(s.caught) / s.bad;
  if (s.caught) s.f1 = 2 * s.precision * s.recall / (s.precision + s.recall);
  return s;
}

json to_json(const Score& s) {
  auto n = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return {{"precision", n(s.precision)}, {"recall", n(s.recall)}, {"f1", s.f1}, {"flagged", s.flagged},
          {"bad", s.bad}, {"bad_flagged", s.caught}};
}

// The cut on one measurement (midpoints between observed values) with the best F1, the other
// threshold held; `current` when no cut separates anything.
double best_cut(const std::vector<Sample>& samples, double Sample::*field, double current,
                const std::function<Score(double)>& with) {
  std::vector<double> values;
  for (const auto& s : samples)
    if (std::isfinite(s.*field)) values.push_back(s.*field);
  std::sort(values.begin(), values.end());
  double best = current;
  double best_f1 = with(current).f1;
  for (std::size_t i = 0; i + 1 < values.size(); ++i) {
    if (values[i] == values[i + 1]) continue;
    const double cut = (values[i] + values[i + 1]) / 2;
    const double f1 = with(cut).f1;
    if (f1 > best_f1 + 1e-12) best = cut, best_f1 = f1;
  }
  return best;
}

// The reference remapped to the card's values, on the image's grid.
LabelImage::Pointer reference_on(const Image& image, const TrainingPair& pair, const std::vector<LabelSpec>& labels) {
  const auto reference = detail::read_reference(pair.label);
  const auto on_grid = detail::resample_like(*reference, image, true, 0.0f);
  const auto values = detail::remap_labels(*on_grid, labels);
  auto out = LabelImage::New();
  out->CopyInformation(&image);
  out->SetRegions(image.GetLargestPossibleRegion());
  out->Allocate();
  std::copy(values.begin(), values.end(), out->GetBufferPointer());
  return out;
}

}  // namespace

CalibrationResult calibrate(const Model& model, const std::vector<TrainingPair>& pairs, const std::vector<LabelSpec>& given) {
  if (pairs.empty()) throw SegmentationError("calibrate: no labelled cases");
  const ModelCard& card = model.card();
  const std::vector<LabelSpec> labels = detail::labels_to_score(card, given);
  std::vector<std::vector<Image::Pointer>> images;
  std::vector<LabelImage::Pointer> references;
  std::vector<Sample> samples;
  json cases = json::array();
  for (const auto& pair : pairs) {
    const auto image = detail::read_image(pair.image, pair.series);
    const auto reference = reference_on(*image, pair, labels);
    const Segmentation result = segment(model, {image});
    const json qa = review(result, {image}, card, {});
    // Dice per card structure on the image's grid.
    std::vector<std::uint8_t> pred(result.labels->GetBufferedRegion().GetNumberOfPixels());
    std::transform(result.labels->GetBufferPointer(), result.labels->GetBufferPointer() + pred.size(), pred.begin(),
                   [](std::uint16_t v) { return std::uint8_t(std::min<std::uint16_t>(v, 255)); });
    std::vector<std::uint8_t> ref(reference->GetBufferPointer(), reference->GetBufferPointer() + pred.size());
    const auto dice = detail::dice_per_label(pred.data(), ref.data(), pred.size(), labels);
    json structures = json::array();
    for (const auto& s : qa["structures"]) {
      Sample x;
      x.case_name = pair.image.filename().string();
      x.structure = s["name"].get<std::string>();
      const auto d = std::find_if(dice.begin(), dice.end(), [&](const LabelDice& l) { return l.name == x.structure; });
      if (d == dice.end() || !d->dice) continue;  // absent from both: nothing to learn from
      x.dice = *d->dice;
      if (s.contains("mean_probability") && s["mean_probability"].is_number()) x.mean_probability = s["mean_probability"];
      if (s.contains("border_entropy") && s["border_entropy"].is_number()) x.border_entropy = s["border_entropy"];
      for (const auto& f : s["flags"]) {
        const std::string check = f["check"];
        x.other_flags |= check != "mean_probability" && check != "border_entropy";
      }
      structures.push_back({{"name", x.structure}, {"dice", x.dice}, {"mean_probability", s["mean_probability"]},
                            {"border_entropy", s["border_entropy"]}, {"flags", s["flags"]}});
      samples.push_back(x);
    }
    cases.push_back({{"image", pair.image.string()}, {"label", pair.label.string()}, {"structures", structures},
                     {"input_flags", qa["flags"]}});
    images.push_back({image});
    references.push_back(reference);
  }

  CalibrationResult out;
  out.card = card;
  out.card.training_profile = profile_of(images, references, "sagitta calibrate");
  // The modality, as `sagitta train` states it: CT for a single channel named CT.
  if (card.channels.size() == 1 && card.channels[0].name == "CT") out.card.training_profile->modality = "CT";
  if (card.training_profile) {  // what the card knew and the references cannot say
    if (out.card.training_profile->modality.empty()) out.card.training_profile->modality = card.training_profile->modality;
    if (out.card.training_profile->body_part.empty()) out.card.training_profile->body_part = card.training_profile->body_part;
  }
  const ReviewThresholds before = merged(review_defaults(), card.review_thresholds);
  double min_p = *before.min_mean_probability, max_h = *before.max_border_entropy;
  const Score before_all = score(samples, min_p, max_h, true), before_confidence = score(samples, min_p, max_h, false);
  int bad = 0;
  for (const auto& s : samples) bad += s.bad();
  json notes = json::array();
  if (bad == 0 || bad == int(samples.size())) {
    notes.push_back(fmt::format("{} of {} structures have Dice < {}: no cut can be learned; the thresholds stay as they "
                                "were",
                                bad, samples.size(), kBadDice));
  } else {
    min_p = best_cut(samples, &Sample::mean_probability, min_p, [&](double t) { return score(samples, t, max_h, false); });
    max_h = best_cut(samples, &Sample::border_entropy, max_h, [&](double t) { return score(samples, min_p, t, false); });
  }
  out.card.review_thresholds = card.review_thresholds;
  out.card.review_thresholds.min_mean_probability = min_p;
  out.card.review_thresholds.max_border_entropy = max_h;
  out.card.review_thresholds.source = fmt::format("sagitta calibrate on {} case(s)", pairs.size());
  const Score after_all = score(samples, min_p, max_h, true), after_confidence = score(samples, min_p, max_h, false);
  out.report = {{"cases", cases},
                {"bad_dice_below", kBadDice},
                {"structures", samples.size()},
                {"bad_structures", bad},
                {"thresholds", {{"min_mean_probability", min_p}, {"max_border_entropy", max_h}}},
                {"before", {{"needs_review", to_json(before_all)}, {"confidence_flags", to_json(before_confidence)}}},
                {"after", {{"needs_review", to_json(after_all)}, {"confidence_flags", to_json(after_confidence)}}},
                {"notes", notes},
                {"training_profile", to_json(*out.card.training_profile)}};
  return out;
}

}  // namespace sagitta::segmentation

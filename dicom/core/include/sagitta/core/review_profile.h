#pragma once
// What a model was trained on and when its results need a human's review (issue 16). A model card
// carries both: the training profile (the inputs it has seen: modality, spacing, field of view,
// intensities inside the labelled structures) and the review thresholds that turn a study's
// measurements (confidence, input statistics) into flags. `sagitta train` records the profile,
// nnU-Net folders bring theirs (plans' foreground intensities, the dataset fingerprint), and
// `sagitta calibrate` measures both on labelled studies.
#include <array>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sagitta {

// Summary statistics of a set of intensities (nnU-Net's fingerprint keeps the same numbers).
struct IntensitySummary {
  double mean = 0, std = 0, p00_5 = 0, median = 0, p99_5 = 0;
};

struct TrainingProfile {
  std::string source;                    // who measured it: "sagitta train", "nnU-Net plans", ...
  std::string modality;                  // "CT", "MR", ... ("" unknown)
  std::string body_part;                 // DICOM BodyPartExamined ("" unknown)
  std::optional<std::array<double, 3>> spacing_min, spacing_max;  // mm, x y z, over the cases
  std::optional<std::array<double, 3>> extent_min, extent_max;    // field of view in mm, x y z
  std::vector<IntensitySummary> foreground;  // per channel, over the voxels of every structure
  int cases = 0;                         // how many cases it was measured on (0: unknown)
};

// The thresholds of the review flags. Unset: the built-in default (review_defaults()).
struct ReviewThresholds {
  std::optional<double> min_mean_probability;  // a structure's mean probability inside it
  std::optional<double> max_border_entropy;    // a structure's mean normalised entropy on its border
  std::optional<double> max_intensity_z;       // |median - training median| / training std, foreground
  std::optional<double> spacing_factor;        // spacing outside [min / f, max x f] of the training's
  std::optional<double> extent_factor;         // field of view outside [min / f, max x f]
  std::optional<double> max_components;       // connected components of one structure
  std::optional<double> max_tta_disagreement;  // a structure's mean share of mirrored passes that
                                               // disagree with the averaged label
  std::optional<double> max_fold_disagreement;  // the same over the folds of an ensemble
  std::string source;                          // "card", "calibration", ... ("" none given)
};

// The built-in thresholds, used for every value a card leaves unset.
ReviewThresholds review_defaults();
// `overrides`' values where set, else `base`'s.
ReviewThresholds merged(const ReviewThresholds& base, const ReviewThresholds& overrides);
// Sets one threshold by name (the JSON key: "min_mean_probability"...); throws Error for an
// unknown name.
void set_threshold(ReviewThresholds& t, const std::string& name, double value);

nlohmann::json to_json(const IntensitySummary& s);
nlohmann::json to_json(const TrainingProfile& p);
nlohmann::json to_json(const ReviewThresholds& t);  // set values only, plus "source"
// Throw Error naming the field that is wrong.
TrainingProfile training_profile_from_json(const nlohmann::json& j);
ReviewThresholds review_thresholds_from_json(const nlohmann::json& j);

// The summary of `values` (reordered in place); percentiles by linear interpolation between order
// statistics (numpy's default). All zeros for an empty set.
IntensitySummary summarize(std::vector<float>& values);

}  // namespace sagitta

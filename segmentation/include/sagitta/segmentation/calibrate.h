#pragma once
// `sagitta calibrate`: a model's training profile and review thresholds measured on labelled
// cases, and how well the review flags find the bad results (issue 16; docs/review.md).
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/segmentation/model.h"
#include "sagitta/segmentation/train.h"

namespace sagitta::segmentation {

struct CalibrationResult {
  ModelCard card;         // the model's card with the measured training profile and thresholds
  nlohmann::json report;  // per case and structure: measurements, Dice, flags; the thresholds
                          // chosen and why; precision and recall of needs_review vs Dice < 0.8
};

// A structure result is bad when its Dice against the reference is below this.
inline constexpr double kBadDice = 0.8;

// Runs `model` on each pair as `sagitta segment` does (segment(), then review()), scores each
// structure against the reference (`labels` maps reference values to the card's labels; empty:
// the card's training mapping, else the values as they are), and measures:
//  - the training profile from the references (spacing and field of view of the images,
//    intensities inside the reference structures);
//  - min_mean_probability and max_border_entropy as the cut that best separates bad structures
//    (Dice < kBadDice) from good ones by the confidence flags alone (highest F1; the card's or
//    default value is kept when the cases hold no bad or no good structure, and the report says so);
//  - precision and recall against Dice < kBadDice, before and after, of the confidence flags and
//    of the structures' whole needs_review (which also counts cut-off, components...).
// Throws SegmentationError for unreadable pairs or a reference off the image's grid.
CalibrationResult calibrate(const Model& model, const std::vector<TrainingPair>& pairs,
                            const std::vector<LabelSpec>& labels = {});

}  // namespace sagitta::segmentation

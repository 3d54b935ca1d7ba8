#pragma once
// Does a study's result need a human's review? (issue 16; docs/review.md). Measures the input
// against the model card's training profile (modality, body part, spacing, field of view,
// intensities inside the segmented structures) and each structure's confidence, connectedness and
// position against the card's review thresholds (or the command line's), and says what it could
// not check and why. Every flag names what was measured and against what.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/core/review_profile.h"
#include "sagitta/segmentation/segment.h"

namespace sagitta::segmentation {

struct ReviewContext {
  std::string modality, body_part;  // from the input's DICOM header; "" when unknown (NIfTI, NRRD)
  ReviewThresholds overrides;       // e.g. the command line's; win over the card's
  bool mirrored = false;            // test-time mirroring ran
};

// The "qa" section of the study's report: {needs_review, thresholds, flags, skipped, input,
// structures}. `inputs` are the volumes segment() was given (one per card channel, source grid).
nlohmann::json review(const Segmentation& result, const std::vector<Image::Pointer>& inputs, const ModelCard& card,
                      const ReviewContext& context);

// The training profile of labelled cases: spacing and field-of-view ranges and, per channel, the
// intensities inside the labels (label > 0) — what `sagitta train` and `sagitta calibrate` store
// in a card. `cases[k]` holds one volume per channel and `labels[k]` its label map (same grid).
TrainingProfile profile_of(const std::vector<std::vector<Image::Pointer>>& cases,
                           const std::vector<LabelImage::Pointer>& labels, const std::string& source);

}  // namespace sagitta::segmentation

#pragma once
// The whole segmentation of one volume: preprocess -> sliding window -> softmax/argmax -> back to
// the source grid -> postprocess -> statistics, with the decisions and timings for the report.
#include <string>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/segmentation/model.h"
#include "sagitta/segmentation/postprocess.h"
#include "sagitta/segmentation/preprocess.h"
#include "sagitta/segmentation/sliding_window.h"

namespace sagitta::segmentation {

struct SegmentOptions {
  PreprocessOptions preprocess;
  SlidingWindowOptions window;
  PostprocessOptions postprocess;
  bool probabilities = false;  // also return per-class probabilities on the source grid
};

// How sure the model was of one structure, measured on the model's grid before postprocessing:
// the winning probability and the normalised entropy (0 certain .. 1 uniform, see
// detail::confidence_from_scores) averaged over the structure's voxels and over its border (its
// voxels with a 6-neighbour of another label). NaN where the structure has no voxels.
struct StructureConfidence {
  int value = 0;
  std::string name;
  std::size_t voxels = 0, border_voxels = 0;
  double mean_probability = 0, mean_entropy = 0, border_probability = 0, border_entropy = 0;
  // With mirroring: the mean over its voxels of the share of mirrored passes whose decision differs
  // from the averaged one (windows blended by their Gaussian weights); unset without mirroring.
  std::optional<double> tta_disagreement;
  // With several folds (nnU-Net): the mean over its voxels of the share of folds whose own decision
  // differs from the ensemble's; unset with one set of weights.
  std::optional<double> fold_disagreement;
};

struct Segmentation {
  LabelImage::Pointer labels;                 // on the source grid (geometry identical to inputs[0])
  std::vector<Image::Pointer> probabilities;  // one per class (value = index), source grid; when asked
  std::vector<LabelStatistics> statistics;    // per card label, on the source grid
  std::vector<StructureConfidence> confidence;  // per card label but the background (model grid)
  nlohmann::json report;                      // decisions, windows, timings (seconds), statistics
};

// `inputs`: one volume per card channel, all on one grid. Throws SegmentationError.
Segmentation segment(const Model& model, const std::vector<Image::Pointer>& inputs, const SegmentOptions& options = {});

// The same from inputs already preprocessed for this model (preprocess(inputs, model.card(),
// options.preprocess)), e.g. on a thread that prepares the next study of a cohort while this one
// runs. `pre` is consumed.
Segmentation segment(const Model& model, const std::vector<Image::Pointer>& inputs, Preprocessed pre,
                     const SegmentOptions& options = {});

}  // namespace sagitta::segmentation

#pragma once
// nnU-Net v2 results folders through Sagitta's pipeline: preprocess() and segment() hand models of
// format "nnunet" read from a results folder to these, which run nnU-Net's predictor step for step
// (nnunet.h for the data path, the one window engine for the windows). Torch-free.
#include <vector>

#include "sagitta/segmentation/preprocess.h"
#include "model_conventions.h"
#include "sagitta/segmentation/segment.h"

namespace sagitta::segmentation::detail {

// DefaultPreprocessor.run_case_npy on the inputs (one per channel): the channels as the network's
// arrays, the plan and the properties for the way back.
Preprocessed preprocess_nnunet(const std::vector<Image::Pointer>& inputs, const ModelCard& card);

// predict_logits_from_preprocessed_data (every fold's window pass, float16 sums, folds averaged in
// float16) and convert_predicted_logits_to_segmentation_with_correct_shape, then Sagitta's
// postprocessing and statistics on the source grid.
Segmentation segment_nnunet(const Model& model, const std::vector<Image::Pointer>& inputs, Preprocessed pre,
                            const SegmentOptions& options);

}  // namespace sagitta::segmentation::detail

#pragma once
// The one intensity normalisation of single-channel inputs (a card channel's Normalization),
// shared by inference (preprocess.cpp) and training (train_cases.cpp, train_evaluate.cpp) so
// the network sees the same numbers in both. No LibTorch, no ITK.
#include <vector>

#include "sagitta/segmentation/model_card.h"

namespace sagitta::segmentation::detail {

// Applies `n` to `values` in place.
void normalise(std::vector<float>& values, const Normalization& n);

}  // namespace sagitta::segmentation::detail

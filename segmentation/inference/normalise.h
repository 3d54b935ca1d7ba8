#pragma once
// The one intensity normalisation of single-channel inputs (a card channel's Normalization),
// shared by inference (preprocess.cpp) and training (train_cases.cpp, train_evaluate.cpp) so
// the network sees the same numbers in both. No LibTorch, no ITK.
#include <cstddef>
#include <string>
#include <vector>

#include "sagitta/core/model_card.h"

namespace sagitta::segmentation::detail {

// Applies `n` to `count` values from `src` into `dst` (which may be `src`) and says what was done,
// naming the input `what` (empty for Scheme::None). Float arithmetic, as inference always had.
std::string normalise(const float* src, float* dst, std::size_t count, const Normalization& n, const std::string& what);

// The same, in place.
void normalise(std::vector<float>& values, const Normalization& n);

}  // namespace sagitta::segmentation::detail

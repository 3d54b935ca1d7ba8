#pragma once
// The per-voxel kernels over class scores, one place for the whole-volume functions
// (postprocess.h's softmax and argmax) and for segment()'s streamed blocks. No LibTorch, no ITK.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace sagitta::segmentation::detail {

// Voxels [0, n) of every class plane (planes[c][i]) to probabilities, in place: exp(score - max),
// summed in class order, times the reciprocal of the sum.
void softmax_in_place(const std::vector<float*>& planes, std::size_t n);

// out[i] = the class with the highest score at voxel i; ties (and NaN) go to the lower class.
void argmax_into(const std::vector<const float*>& planes, std::size_t n, std::uint16_t* out);

// Region (sigmoid) models: out[i] = values[r] of the last region r whose score at voxel i is
// positive (probability above 0.5; later regions win), else 0.
void region_labels_into(const std::vector<const float*>& planes, const std::vector<std::uint16_t>& values,
                        std::size_t n, std::uint16_t* out);

// The model's confidence at voxels [0, n) from its raw scores (logits), without changing them:
// top[i] the winning probability and entropy[i] the entropy of the voxel's distribution divided by
// its maximum (0 certain, 1 uniform). Softmax models: over the classes, ln(k) the maximum.
// Sigmoid (region) models: each region is its own yes/no; top is the least certain region's
// max(p, 1 - p) and entropy the mean of the regions' binary entropies / ln 2.
// Softmax models, when `argmax` is given: argmax_into's labels from the same pass.
void confidence_from_scores(const std::vector<const float*>& planes, std::size_t n, bool sigmoid, float* top,
                            float* entropy, std::uint16_t* argmax = nullptr);

}  // namespace sagitta::segmentation::detail

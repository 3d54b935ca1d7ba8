#pragma once
// From per-class scores to a clean label map and its numbers: softmax, argmax, per-label
// connected-component rules (largest component, minimum size), hole filling, and per-label
// statistics (voxels, mL, bounding box, mean intensity).
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/segmentation/images.h"
#include "sagitta/core/model_card.h"

namespace sagitta::segmentation {

// Logits to probabilities, in place (per voxel, over the classes).
void softmax(std::vector<Image::Pointer>& scores);

// The class with the highest score per voxel (class index = label value); ties go to the lower
// class. The label map has the scores' geometry.
LabelImage::Pointer argmax(const std::vector<Image::Pointer>& scores);

struct PostprocessOptions {
  bool largest_component = false;      // keep only each label's largest connected component
  bool fill_holes = false;             // background enclosed by one label becomes that label
  std::size_t min_component_voxels = 0;  // drop components smaller than this (0: keep all)
  std::vector<int> labels;             // labels the rules apply to; empty: every label
};

// Applies the rules in place (6-connectivity, in 3D) and returns what was changed.
std::vector<std::string> postprocess(LabelImage& labels, const PostprocessOptions& options);

struct LabelStatistics {
  int value = 0;
  std::string name;
  std::size_t voxels = 0;
  double volume_ml = 0;
  std::array<long, 3> bbox_min{}, bbox_max{};  // voxel indices (x y z), inclusive; unset when empty
  double mean_intensity = 0;                   // of `intensity` over the label; 0 when none given
  std::size_t components = 0;                  // connected components (6-connectivity)
  bool touches_edge = false;                   // reaches a face of the volume (may be cut off)
};

// One entry per card label (background included), in the card's order. `intensity` (optional)
// must be on the label map's grid.
std::vector<LabelStatistics> label_statistics(const LabelImage& labels, const Image* intensity, const ModelCard& card);
nlohmann::json to_json(const LabelStatistics& s);

}  // namespace sagitta::segmentation

#pragma once
// An explanation's files (heatmap volumes, overlay PNGs, montages, uncertainty) among a command's
// staged outputs: shared by `sagitta explain` and `sagitta segment --explain`.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/core/atomic_output.h"
#include "sagitta/explain/colormap.h"
#include "sagitta/explain/explain.h"
#include "sagitta/segmentation/segment.h"

namespace sagitta::cli {

struct PictureOptions {
  explain::OverlayOptions overlay;
  bool auto_window = true;  // window/level from the card (CT: 400/40) or the volume's percentiles
  int slices = 6;           // montage: most salient slices per label
};

// Files named heatmap.nrrd, overlay.png, montage.png; with `suffix`, heatmap_<label>.nrrd etc.
// (several labels), added to `out`. Returns what each picture shows (slices, window/level) for
// the report.
nlohmann::json write_explanation_files(const explain::Explanation& e, const Image& volume, const ModelCard& card,
                                       StagedOutputs& out, const std::string& ext, PictureOptions options, bool suffix);

// `segment --explain`: the segmentation and a Grad-CAM map of every predicted foreground label
// from one pass over the windows (labels predicted nowhere are skipped with a note). Throws
// ExplainError (also for a model without an activation output, naming the methods that work).
explain::Explanation segment_and_explain(const segmentation::Model& model, const std::vector<Image::Pointer>& inputs,
                                         const segmentation::SegmentOptions& options);

// Writes the explanation's files (heatmap_<label>, overlay_<label>.png, montage_<label>.png) to
// `out` and adds "explanation" and "pictures" to `report`.
void add_explanation_outputs(const explain::Explanation& e, const Image& volume, const ModelCard& card,
                             StagedOutputs& out, const std::string& ext, nlohmann::json& report);

}  // namespace sagitta::cli

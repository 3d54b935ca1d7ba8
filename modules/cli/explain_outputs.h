#pragma once
// Writing an explanation's files (heatmap volumes, overlay PNGs, montages, uncertainty) into a
// staging folder: shared by `sagitta explain` and `sagitta segment --explain`.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "parameter_table.h"
#include "sagitta/segmentation/segment.h"
#include "sagitta/explain/colormap.h"
#include "sagitta/explain/explain.h"

namespace sagitta::cli {

struct PictureOptions {
  explain::OverlayOptions overlay;
  bool auto_window = true;  // window/level from the card (CT: 400/40) or the volume's percentiles
  int slices = 6;           // montage: most salient slices per label
};

// Files named heatmap.nrrd, overlay.png, montage.png; with `suffix`, heatmap_<label>.nrrd etc.
// (several labels). Returns the names written (relative to `dir`) and fills `pictures` with what
// each picture shows (slices, window/level) for the report.
std::vector<std::string> write_explanation_files(const explain::Explanation& e, const segmentation::Image& volume,
                                                 const segmentation::ModelCard& card, const std::filesystem::path& dir,
                                                 const std::string& ext, PictureOptions options, bool suffix,
                                                 nlohmann::json* pictures);

// `segment --explain`: the segmentation and a Grad-CAM map of every predicted foreground label
// from one pass over the windows (labels predicted nowhere are skipped with a note). Throws
// SegmentationError (also for a model without an activation output, naming the methods that work).
explain::Explanation segment_and_explain(const segmentation::Model& model, const std::vector<segmentation::Image::Pointer>& inputs,
                                         const segmentation::SegmentOptions& options);

// Writes the explanation's files into `staging` (heatmap_<label>, overlay_<label>.png,
// montage_<label>.png), appends their names to `written` and adds "explanation" and "pictures"
// to `report`.
void add_explanation_outputs(const explain::Explanation& e, const segmentation::Image& volume,
                             const segmentation::ModelCard& card, const std::filesystem::path& staging,
                             const std::string& ext, std::vector<std::string>& written, nlohmann::json& report);

}  // namespace sagitta::cli

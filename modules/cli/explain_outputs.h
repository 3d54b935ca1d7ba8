#pragma once
// Writing an explanation's files (heatmap volumes, overlay PNGs, montages, uncertainty) into a
// staging folder: shared by `sagitta explain` and `sagitta segment --explain`.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "parameter_table.h"
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

}  // namespace sagitta::cli

// What a batch of slides needs from the pathology library: the slide's output folder name and
// when a slide's outputs are finished (its summary exists with the same settings). The batch
// itself (lists, shards, skipping, atomic per-slide folders, the CSV) is sagitta::batch, shared
// with `sagitta segment --cohort`.
#include <fstream>

#include "sagitta/segmentation/wsi.h"

namespace sagitta::segmentation::wsi {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string slide_name(const fs::path& slide) { return slide.stem().string(); }

// --assume-mpp is not part of the settings (it only matters for slides without a resolution); a
// slide segmented at an assumed resolution is finished only for the same assumption.
std::optional<json> finished_summary(const fs::path& folder, const json& settings, std::optional<double> assume_mpp) {
  const fs::path summary = SlideOutputs::in(folder).summary;
  std::error_code ec;
  if (!fs::is_regular_file(summary, ec)) return std::nullopt;
  std::ifstream f(summary);
  try {
    json j = json::parse(f);
    if (j.value("settings", json()) != settings) return std::nullopt;
    if (j.value("mpp_source", std::string()).rfind("assumed", 0) == 0 && (!assume_mpp || j.value("mpp", 0.0) != *assume_mpp))
      return std::nullopt;
    return j;
  } catch (const json::exception&) {
    return std::nullopt;  // not ours or damaged: recompute
  }
}

}  // namespace sagitta::segmentation::wsi

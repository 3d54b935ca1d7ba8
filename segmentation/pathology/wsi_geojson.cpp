// QuPath GeoJSON annotations of a slide's masks: pixel-edge polygons (sagitta/core/contours.h)
// grouped into outer rings with holes, in level-0 pixel coordinates.
#include <algorithm>
#include <array>
#include <cmath>

#include "sagitta/core/contours.h"
#include "sagitta/segmentation/wsi.h"

namespace sagitta::segmentation::wsi {
using json = nlohmann::json;

namespace {

// A MultiPolygon of every loop of one value; rings closed (first point repeated), pixel corners
// scaled to level-0 pixels.
json multipolygon(const std::vector<contours::Polygon>& loops, double downsample) {
  json polygons = json::array();
  for (const auto& rings : contours::polygons_with_holes(loops)) {
    json polygon = json::array();
    for (const auto& ring : rings) {
      json points = json::array();
      for (const auto& v : ring) points.push_back({(v.x + 0.5) * downsample, (v.y + 0.5) * downsample});
      points.push_back(points.front());
      polygon.push_back(std::move(points));
    }
    polygons.push_back(std::move(polygon));
  }
  return {{"type", "MultiPolygon"}, {"coordinates", std::move(polygons)}};
}

json feature(const std::string& name, const std::array<int, 3>& color, json geometry) {
  return {{"type", "Feature"},
          {"geometry", std::move(geometry)},
          {"properties",
           {{"objectType", "annotation"}, {"name", name}, {"classification", {{"name", name}, {"color", color}}}}}};
}

}  // namespace

int annotation_level(const std::vector<std::pair<int, int>>& level_sizes, long long max_pixels) {
  for (std::size_t l = 0; l < level_sizes.size(); ++l)
    if (static_cast<long long>(level_sizes[l].first) * level_sizes[l].second <= max_pixels) return static_cast<int>(l);
  return level_sizes.empty() ? 0 : static_cast<int>(level_sizes.size()) - 1;
}

json qupath_annotations(const TissueMask& tissue, const LabelMask& mask, double mask_downsample, const ModelCard& card) {
  json features = json::array();
  if (!tissue.mask.empty()) {
    auto loops = contours::trace(tissue.mask.data(), tissue.width, tissue.height);
    if (!loops[1].empty()) features.push_back(feature("Tissue", {80, 80, 80}, multipolygon(loops[1], tissue.downsample)));
  }
  const auto by_value = contours::trace(mask.labels.data(), mask.width, mask.height);
  for (const auto& [value, loops] : by_value) {
    const auto label = std::find_if(card.labels.begin(), card.labels.end(), [v = value](const sagitta::Label& l) { return l.value == v; });
    const std::string name = label != card.labels.end() && !label->name.empty() ? label->name : "class " + std::to_string(value);
    const std::array<int, 3> color = label != card.labels.end() ? label->color : std::array<int, 3>{128, 128, 128};
    features.push_back(feature(name, color, multipolygon(loops, mask_downsample)));
  }
  return {{"type", "FeatureCollection"}, {"features", std::move(features)}};
}

}  // namespace sagitta::segmentation::wsi

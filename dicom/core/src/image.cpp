// Image helpers that need no template (see sagitta/core/image.h).
#include "sagitta/core/image.h"

namespace sagitta {

nlohmann::json geometry_json(const itk::ImageBase<3>& image) {
  nlohmann::json direction = nlohmann::json::array();
  for (int r = 0; r < 3; ++r)
    direction.push_back({image.GetDirection()[r][0], image.GetDirection()[r][1], image.GetDirection()[r][2]});
  const auto size = image.GetLargestPossibleRegion().GetSize();
  return {{"size", {size[0], size[1], size[2]}},
          {"spacing", {image.GetSpacing()[0], image.GetSpacing()[1], image.GetSpacing()[2]}},
          {"origin", {image.GetOrigin()[0], image.GetOrigin()[1], image.GetOrigin()[2]}},
          {"direction", direction},
          {"coordinates", "LPS"}};
}

}  // namespace sagitta

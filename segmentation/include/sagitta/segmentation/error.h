#pragma once
// The one exception type of sagitta::segmentation.
#include <stdexcept>

namespace sagitta::segmentation {

class SegmentationError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

}  // namespace sagitta::segmentation

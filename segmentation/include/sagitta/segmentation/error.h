#pragma once
// The one exception type of sagitta::segmentation, a sagitta::Error (sagitta/core/error.h decides the
// exit code). Messages name the model, input or option and say what to do.
#include "sagitta/core/error.h"

namespace sagitta::segmentation {
struct SegmentationError : sagitta::Error { using sagitta::Error::Error; };
}  // namespace sagitta::segmentation

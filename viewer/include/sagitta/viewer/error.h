#pragma once
// The one exception type of sagitta::viewer, a sagitta::Error (sagitta/core/error.h decides the
// exit code). Messages name the file or setting and say what to do.
#include "sagitta/core/error.h"

namespace sagitta::viewer {
struct ViewerError : sagitta::Error { using sagitta::Error::Error; };
}  // namespace sagitta::viewer

#pragma once
// The one exception type of sagitta::explain, a sagitta::Error (sagitta/core/error.h decides the
// exit code). Messages name the label, region or option and say what to do.
#include "sagitta/core/error.h"

namespace sagitta::explain {
struct ExplainError : sagitta::Error { using sagitta::Error::Error; };
}  // namespace sagitta::explain

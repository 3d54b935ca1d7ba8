#pragma once
// The one exception type of sagitta::dicom, a sagitta::Error (sagitta/core/error.h decides the
// exit code). Messages name the file or series and say what to do.
#include "sagitta/core/error.h"

namespace sagitta::dicom {
struct DicomError : sagitta::Error { using sagitta::Error::Error; };
}  // namespace sagitta::dicom

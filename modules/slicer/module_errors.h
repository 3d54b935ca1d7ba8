#pragma once
// Errors raised by the module layer itself (not by the wrapped command): the floor's types, so
// the runner maps them to the same exit codes as the `sagitta` executables.
#include "sagitta/core/error.h"

namespace sagitta::slicer {

using UsageError = sagitta::UsageError;  // exit code 2

class DataError : public sagitta::Error {  // exit code 3
public:
  using sagitta::Error::Error;
};

}  // namespace sagitta::slicer

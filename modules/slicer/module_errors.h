#pragma once
// Errors raised by the module layer itself (not by the wrapped command); the runner maps them to
// the same exit codes as the `sagitta` executable.
#include <stdexcept>

namespace sagitta::slicer {

struct UsageError : std::runtime_error {  // exit code 2
  using std::runtime_error::runtime_error;
};
struct DataError : std::runtime_error {  // exit code 3
  using std::runtime_error::runtime_error;
};

}  // namespace sagitta::slicer

#pragma once
// The one exception type of sagitta::explain.
#include <stdexcept>

namespace sagitta::explain {

class ExplainError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

}  // namespace sagitta::explain

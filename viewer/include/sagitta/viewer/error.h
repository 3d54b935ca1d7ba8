#pragma once
// The one exception type of sagitta::viewer. Messages name the file or setting and say what to do.
#include <stdexcept>
#include <string>

namespace sagitta::viewer {

class ViewerError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

}  // namespace sagitta::viewer

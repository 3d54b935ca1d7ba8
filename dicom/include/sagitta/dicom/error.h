#pragma once
// The one exception type of sagitta::dicom. Messages name the file or series and say what to do.
#include <stdexcept>
#include <string>

namespace sagitta::dicom {

class DicomError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

}  // namespace sagitta::dicom

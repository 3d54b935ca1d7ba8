#pragma once
// Outside judges of written DICOM objects, shared by the suites: dciodvfy (dicom3tools) and a
// Python with pydicom.
#include <filesystem>
#include <string>

namespace sagitta::testing {

// dciodvfy's report on `file` and its "Error" lines (warnings are allowed: it also warns about
// things the standard permits). `installed` is false when dciodvfy is missing.
struct IodCheck {
  bool installed = false;
  std::string report;
  std::size_t errors = 0;
};
IodCheck dciodvfy(const std::filesystem::path& file);

// A Python interpreter that imports every module in `modules` (space separated, e.g.
// "pydicom numpy"), trying /usr/bin/python3 first; "" when none does.
std::string python_with(const std::string& modules);

}  // namespace sagitta::testing

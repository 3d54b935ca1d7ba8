#pragma once
// ASCII case folding and white-space trimming for protocol and attribute text (HTTP headers,
// MIME parts, code meanings): the one copy inside the DICOM library.
#include <cctype>
#include <string>

namespace sagitta::dicom::detail {

inline std::string ascii_lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Without leading and trailing spaces, tabs, CR and LF.
inline std::string trim_space(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

}  // namespace sagitta::dicom::detail

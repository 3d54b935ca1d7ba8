#pragma once
// Text and bytes into self-contained HTML pages (the study report, the cohort monitor): one
// escaper and one base64 encoder for every page Sagitta writes.
#include <string>
#include <string_view>

namespace sagitta {

// Text for HTML element content and attribute values: & < > " ' escaped; invalid UTF-8 bytes and
// control characters other than tab and newline become U+FFFD, so a page never carries broken or
// unparseable text whatever a DICOM header held.
std::string html_escape(std::string_view text);

// Standard base64 (RFC 4648, with padding), e.g. for data: URIs.
std::string base64(std::string_view bytes);

}  // namespace sagitta

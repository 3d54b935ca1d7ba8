#pragma once
// Small edits that let real peers (GDCM, dcm2niix) process the real third-party test files.
#include <filesystem>

namespace sagitta::testing {

// Copies `source` to `target`, filling an empty SOP Class/Instance UID from the file meta
// information (anonymised data often lacks them, and GDCM refuses to write such objects).
// Pixel data is untouched. Returns `target`, or an empty path on failure.
std::filesystem::path copy_with_sop_uids(const std::filesystem::path& source, const std::filesystem::path& target);

}  // namespace sagitta::testing

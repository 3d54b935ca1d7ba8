#pragma once
// Where tests find things: the real third-party data (optional), the project's testdata/,
// a scratch folder per test, and the `sagitta` executable for command-line tests.
#include <filesystem>
#include <vector>
#include <optional>
#include <string>

namespace sagitta::testing {

// $SAGITTA_EXTERNAL_DATA, else the configure-time default (../shared/data); nullopt if absent.
std::optional<std::filesystem::path> external_data();

// Declares `var` as the external data sub-folder `relative`, or GTEST_SKIP()s the calling test
// with a message saying what is missing. Use as: SAGITTA_REQUIRE_EXTERNAL(dir, "dicom/dcm_qa_nih");
#define SAGITTA_REQUIRE_EXTERNAL(var, relative)                                               \
  const auto var##_root_ = ::sagitta::testing::external_data();                               \
  if (!var##_root_ || !std::filesystem::exists(*var##_root_ / (relative)))                    \
    GTEST_SKIP() << "external data '" << (relative)                                           \
                 << "' not found; set SAGITTA_EXTERNAL_DATA to the shared data folder";       \
  const std::filesystem::path var = *var##_root_ / (relative)

std::filesystem::path source_dir();
std::filesystem::path binary_dir();

// A fresh empty folder for the running test (removed and recreated on each call).
std::filesystem::path scratch_dir();

// The sagitta executable ($SAGITTA_BIN, set by ctest).
std::filesystem::path sagitta_executable();

// A file's bytes ("" when it cannot be read).
std::string read_file(const std::filesystem::path& path);

// A path in single quotes for a shell command line.
std::string shell_quote(const std::filesystem::path& path);

// A raw little-endian float32 file (as numpy's tofile writes it).
std::vector<float> read_floats(const std::filesystem::path& path);

struct ProcessResult {
  int exit_code = -1;
  std::string out, err;
};
// Runs a command through /bin/sh, capturing stdout and stderr.
ProcessResult run_command(const std::string& command);

}  // namespace sagitta::testing

#include "support/test_paths.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

namespace sagitta::testing {
namespace fs = std::filesystem;

std::optional<fs::path> external_data() {
  const char* env = std::getenv("SAGITTA_EXTERNAL_DATA");
  fs::path dir = (env && *env) ? fs::path(env) : fs::path(SAGITTA_DEFAULT_EXTERNAL_DATA);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return std::nullopt;
  return fs::canonical(dir, ec);
}

fs::path source_dir() { return SAGITTA_SOURCE_DIR; }
fs::path binary_dir() { return SAGITTA_BINARY_DIR; }

fs::path scratch_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "scratch";
  for (char& c : name)
    if (c == '/') c = '_';
  fs::path dir = binary_dir() / "test_scratch" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

fs::path sagitta_executable() {
  const char* env = std::getenv("SAGITTA_BIN");
  if (env && *env) return env;
  return binary_dir() / "modules" / "sagitta";
}

ProcessResult run_command(const std::string& command) {
  // stderr goes to a temporary file so both streams can be captured without threads.
  const fs::path err_file = fs::temp_directory_path() / ("sagitta_test_err_" + std::to_string(::getpid()));
  ProcessResult result;
  FILE* pipe = ::popen((command + " 2>'" + err_file.string() + "'").c_str(), "r");
  if (!pipe) return result;
  std::array<char, 4096> buffer{};
  std::size_t n;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.out.append(buffer.data(), n);
  const int status = ::pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream err(err_file);
  std::stringstream ss;
  ss << err.rdbuf();
  result.err = ss.str();
  fs::remove(err_file);
  return result;
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string shell_quote(const std::filesystem::path& path) { return "'" + path.string() + "'"; }

std::vector<float> read_floats(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::vector<float> v(std::size_t(f.tellg()) / sizeof(float));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  return v;
}

}  // namespace sagitta::testing

// One Slicer CLI module executable (SagittaSegment, SagittaConvert, ...), compiled once per module
// with SAGITTA_MODULE_COMMAND naming the `sagitta` command and SAGITTA_MODULE_XML_HEADER the
// description generated at build time from that command's parameter table.
//
// Slicer runs every executable in its module paths with --xml at start-up and waits for the answer.
// This program links nothing but the C++ runtime, so it answers in milliseconds; for a real run it
// replaces itself (execv, same process id: Slicer's SIGTERM still reaches the work) with
// sagitta-slicer-runner, which links LibTorch, ITK and VTK.
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include SAGITTA_MODULE_XML_HEADER  // defines kModuleXml

namespace {

std::string directory_of_this_executable() {
  char buffer[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) return {};
  std::string path(buffer, std::size_t(n));
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

bool executable(const std::string& path) { return !path.empty() && ::access(path.c_str(), X_OK) == 0; }

// $SAGITTA_SLICER_RUNNER, else ../libexec/ beside the module folder (the installed layout and
// the build tree's), else where the build put it. Not in the module folder itself: Slicer would
// probe it as a module.
std::string find_runner() {
  if (const char* env = std::getenv("SAGITTA_SLICER_RUNNER"); env && executable(env)) return env;
  const std::string here = directory_of_this_executable();
  if (!here.empty() && executable(here + "/../libexec/sagitta-slicer-runner")) return here + "/../libexec/sagitta-slicer-runner";
#ifdef SAGITTA_BUILD_RUNNER
  if (executable(SAGITTA_BUILD_RUNNER)) return SAGITTA_BUILD_RUNNER;
#endif
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--xml") == 0) {
      std::fputs(kModuleXml, stdout);
      return std::fflush(stdout) == 0 ? 0 : 1;
    }
  const std::string runner = find_runner();
  const char* name = std::strrchr(argv[0], '/') ? std::strrchr(argv[0], '/') + 1 : argv[0];
  if (runner.empty()) {
    std::fprintf(stderr, "%s: error: sagitta-slicer-runner not found (looked in ../libexec beside this module); "
                 "set SAGITTA_SLICER_RUNNER\n", name);
    return 1;
  }
  std::vector<char*> args;
  args.push_back(const_cast<char*>(runner.c_str()));
  args.push_back(const_cast<char*>(SAGITTA_MODULE_COMMAND));
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  ::execv(runner.c_str(), args.data());
  std::fprintf(stderr, "%s: error: cannot run %s: %s\n", name, runner.c_str(), std::strerror(errno));
  return 1;
}

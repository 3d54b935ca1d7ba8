// The `sagitta` front: `sagitta <command> ...` replaces itself (execv, same process id, so signals
// and exit codes pass straight through) with the executable that holds the command. Each
// executable links only what its commands need: the DICOM commands start in milliseconds without
// LibTorch or VTK, the model commands carry LibTorch, the viewer commands VTK. This program links
// nothing but the C++ runtime; its command table is generated at build time from the
// executables' own parameter tables (embed_commands.cmake).
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "front_commands.h"  // kCommands: name, program, description
#include "version.h"

namespace {

std::string this_executable() {
  char buffer[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  return n > 0 ? std::string(buffer, std::size_t(n)) : std::string();
}

// $SAGITTA_LIBEXEC, else ../libexec/sagitta beside this executable (the build tree's and the
// installed layout).
std::string program_path(const std::string& self, const char* program) {
  if (const char* env = std::getenv("SAGITTA_LIBEXEC"); env && *env) return std::string(env) + "/" + program;
  const auto slash = self.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : self.substr(0, slash);
  return dir + "/../libexec/sagitta/" + program;
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "sagitta: error: %s (see sagitta --help)\n", message.c_str());
  return 2;
}

void print_help() {
  std::printf("Sagitta: DICOM to segmentation, explanation and pictures, with no Python.\n\n"
              "Usage: sagitta <command> [options]     sagitta <command> --help for a command's options\n\n"
              "Commands:\n");
  for (const auto& c : kCommands) {
    std::string first_sentence = c.description;
    const auto dot = first_sentence.find(". ");
    if (dot != std::string::npos) first_sentence = first_sentence.substr(0, dot + 1);
    std::printf("  %-9s %s\n", c.name, first_sentence.c_str());
  }
  std::printf("\nOptions:\n  -h, --help  this list\n  --version   the version\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return usage_error("a command is required");
  const std::string first = argv[1];
  if (first == "--help" || first == "-h") {
    print_help();
    return 0;
  }
  if (first == "--version") {
    std::printf("sagitta %s\n", sagitta::cli::kVersion);
    return 0;
  }
  const FrontCommand* command = nullptr;
  for (const auto& c : kCommands)
    if (first == c.name) command = &c;
  if (!command) return usage_error(first[0] == '-' ? "unknown option " + first : "unknown command '" + first + "'");

  const std::string self = this_executable();
  const std::string program = program_path(self, command->program);
  // The demo runs every step through this front.
  if (!self.empty()) ::setenv("SAGITTA_FRONT", self.c_str(), 1);
  std::vector<char*> args{const_cast<char*>(program.c_str())};
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  args.push_back(nullptr);
  ::execv(program.c_str(), args.data());
  std::fprintf(stderr, "sagitta %s: error: cannot run %s: %s (set SAGITTA_LIBEXEC to the folder of the Sagitta programs)\n",
               command->name, program.c_str(), std::strerror(errno));
  return 1;
}

// run_main: CLI11 over the parameter tables, then the floor's failure policy.
#include "run_main.h"

#include <malloc.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include <limits>

#include <CLI/CLI.hpp>

#include <iostream>
#include <memory>

#include "cli11_binding.h"
#include "progress.h"
#include "version.h"

namespace sagitta::cli {

int report_failure(const std::string& where, const std::string& message, int exit_code) {
  // A loop that saw the cancellation request stops with whatever error it raises; report the cause.
  if (cancel_requested() || exit_code == kExitCancelled) {
    std::cerr << where << ": cancelled" << std::endl;
    return kExitCancelled;
  }
  std::cerr << where << ": error: " << sagitta::one_line(message) << std::endl;
  return exit_code;
}

int report_failure(const std::string& where, const std::exception_ptr& error) {
  const sagitta::Failure f = sagitta::describe_failure(error);
  return report_failure(where, f.message, f.exit_code);
}

int run_main(int argc, char** argv, const std::vector<Command>& commands) {
  if (argc == 2 && std::string(argv[1]) == "--commands") {
    for (const auto& c : commands) std::cout << c.spec.name << '\t' << c.spec.description << '\n';
    return kExitOk;
  }
  CLI::App app{"Sagitta: DICOM to segmentation, explanation and pictures, with no Python."};
  app.name("sagitta");
  app.set_version_flag("--version", std::string("sagitta ") + kVersion);
  app.require_subcommand(1, 1);

  std::vector<std::unique_ptr<Binding>> bindings;
  std::vector<CLI::App*> subcommands;
  for (const auto& c : commands) {
    CLI::App* sub = app.add_subcommand(c.spec.name, c.spec.description);
    bindings.push_back(std::make_unique<Binding>(*sub, c.spec));
    subcommands.push_back(sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = "sagitta";
    for (const auto* sub : subcommands)
      if (sub->parsed()) where += " " + sub->get_name();
    return report_failure(where, std::string(e.what()) + " (see " + where + " --help)", kExitUsage);
  }

  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (!subcommands[i]->parsed()) continue;
    const std::string where = "sagitta " + commands[i].spec.name;
    try {
      Arguments args;
      bindings[i]->finish(args);
      install_cancel_handlers();
      return commands[i].run(args);
    } catch (...) {
      return report_failure(where, std::current_exception());
    }
  }
  return kExitUsage;
}

void keep_freed_memory() {
  // Large blocks from the heap rather than their own mappings (unmapped on free), and no trimming
  // of the heap's top: blocks of the sizes a forward pass needs are reused window after window.
  // Volume-sized buffers (huge pages, images) and the engine's logit tiles keep their own mappings.
  ::mallopt(M_MMAP_MAX, 0);
  ::mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

int run_sagitta(const std::vector<std::string>& args, const std::string& who) {
  const char* front = std::getenv("SAGITTA_FRONT");
  const std::string program = front && *front ? front : "sagitta";
  std::vector<char*> argv{const_cast<char*>(program.c_str())};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fflush(stdout);
  pid_t pid = 0;
  if (::posix_spawnp(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
    throw sagitta::Error(who + ": cannot run " + program + " (set SAGITTA_FRONT to the sagitta program)");
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw sagitta::Error(who + ": lost the child process");
  if (cancel_requested()) throw Cancelled();
  return WIFEXITED(status) ? WEXITSTATUS(status) : kExitInternal;
}

}  // namespace sagitta::cli

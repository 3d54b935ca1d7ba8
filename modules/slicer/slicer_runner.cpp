// sagitta-slicer-runner: runs one Slicer CLI module.
//
//   sagitta-slicer-runner <command> --xml            the module description (used at build time)
//   sagitta-slicer-runner <command> <Slicer's args>  a run, as Slicer calls the module
//
// The module executables (SagittaSegment, ...) answer --xml themselves from a copy of this output
// taken at build time and exec() this program for everything else: it links LibTorch, VTK and ITK,
// whose loading alone takes over a second, more than Slicer's start-up scan should wait per module.
// exec() keeps the process id, so Slicer's SIGTERM on cancel reaches this process directly.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "cli11_binding.h"
#include "command.h"
#include "module_commands.h"
#include "module_errors.h"
#include "module_xml.h"
#include "progress.h"
#include "run_main.h"
#include "sagitta/core/atomic_output.h"
#include "version.h"

namespace {
namespace fs = std::filesystem;
using namespace sagitta;

// Slicer reads "name = value" lines; written to a temporary name first, like every output.
void write_return_parameters(const fs::path& path, const slicer::ModuleCommand& m, const slicer::ReturnValues& values) {
  write_atomically(path, [&](const fs::path& tmp) {
    std::ofstream f(tmp);
    for (const auto& g : m.spec.groups)
      for (const auto& p : g.parameters)
        if (p.is_return_value()) {
          auto it = values.find(p.name);
          f << p.name << " = " << (it == values.end() ? std::string() : sagitta::one_line(it->second)) << "\n";
        }
    if (!f.flush()) throw slicer::DataError(path.string() + ": cannot write the return parameter file");
  });
}

void echo(const slicer::ModuleCommand& m, const cli::Arguments& a) {
  fmt::print("{} arguments:\n", m.module);
  for (const auto& g : m.spec.groups)
    for (const auto& p : g.parameters)
      if (!p.is_return_value()) {
        std::string value;
        for (const auto& v : a.list(p.name)) value += (value.empty() ? "" : " ") + v;
        fmt::print("  {}: {}\n", p.name, value);
      }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sagitta;
  cli::keep_freed_memory();
  if (argc < 2 || argv[1][0] == '-') {
    std::cerr << "sagitta-slicer-runner: usage: sagitta-slicer-runner <command> [--xml | module arguments]" << std::endl;
    return cli::kExitUsage;
  }
  const std::string command = argv[1];
  const auto module = slicer::module_command(command);
  if (!module) return cli::report_failure("sagitta-slicer-runner", "no Slicer module for command '" + command + "' in this build", cli::kExitUsage);
  const std::string where = module->module;

  for (int i = 2; i < argc; ++i)
    if (std::strcmp(argv[i], "--xml") == 0) {
      try {
        slicer::ModuleInfo info;
        info.version = cli::kVersion;
        std::cout << slicer::module_xml(module->spec, info) << std::flush;
        return cli::kExitOk;
      } catch (const std::exception& e) {
        return cli::report_failure(where, e.what(), cli::kExitInternal);
      }
    }

  CLI::App app{module->spec.title + ": " + module->spec.description};
  app.name(where);
  app.set_version_flag("--version", where + " " + cli::kVersion);
  cli::Binding binding(app, module->spec);
  // SlicerExecutionModel's standard options next to the module's own.
  std::string return_file, process_information;
  bool echo_arguments = false;
  app.add_option("--returnparameterfile", return_file, "File to write the return parameters to (name = value lines)");
  app.add_option("--processinformationaddress", process_information,
                 "Accepted for Slicer's shared-library modules and ignored: this module is an executable");
  app.add_flag("--echo", echo_arguments, "Print the arguments before running");
  app.add_flag("--xml", "Print the module description for 3D Slicer");

  try {
    app.parse(argc - 1, argv + 1);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return cli::report_failure(where, std::string(e.what()) + " (see " + where + " --help)", cli::kExitUsage);
  }

  try {
    cli::Arguments args;
    binding.finish(args);
    cli::set_progress_style(cli::ProgressStyle::Slicer);
    cli::install_cancel_handlers();
    if (echo_arguments) echo(*module, args);
    slicer::ReturnValues values;
    int rc = 0;
    if (module->reports_progress) {
      rc = module->run(args, values);
    } else {
      // Commands without progress of their own still tell Slicer when they start and end.
      cli::Progress progress(module->spec.title, module->spec.description.substr(0, module->spec.description.find('.')));
      progress.stage(command, 0.0, 1.0);
      rc = module->run(args, values);
      if (rc == cli::kExitOk) progress.finish();
    }
    if (rc == cli::kExitOk && !return_file.empty()) write_return_parameters(return_file, *module, values);
    return rc;
  } catch (...) {
    return cli::report_failure(where, std::current_exception());
  }
}

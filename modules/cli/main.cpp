// The `sagitta` executable: one subcommand per capability, each declared by a parameter table.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <itkMacro.h>

#include <algorithm>
#include <iostream>
#include <memory>

#include "cli11_binding.h"
#include "command.h"
#include "progress.h"
#include "sagitta/dicom/error.h"
#include "sagitta/segmentation/error.h"
#include "version.h"

namespace {

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

int fail(const std::string& where, const std::string& message, int code) {
  // A loop that saw the cancellation request stops with whatever error it raises; report the cause.
  if (sagitta::cli::cancel_requested()) {
    std::cerr << where << ": cancelled" << std::endl;
    return sagitta::cli::kExitCancelled;
  }
  std::cerr << where << ": error: " << one_line(message) << std::endl;
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sagitta::cli;
  CLI::App app{"Sagitta: DICOM to segmentation, explanation and pictures, with no Python."};
  app.name("sagitta");
  app.set_version_flag("--version", std::string("sagitta ") + kVersion);
  app.require_subcommand(1, 1);

  const std::vector<Command> commands = all_commands();
  std::vector<std::unique_ptr<Binding>> bindings;
  std::vector<CLI::App*> subcommands;
  for (const auto& c : commands) {
    CLI::App* sub = app.add_subcommand(c.spec.name, c.spec.description);
    bindings.push_back(std::make_unique<Binding>(*sub, c.spec));
    subcommands.push_back(sub);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string where = "sagitta";
    for (const auto* sub : subcommands)
      if (sub->parsed()) where += " " + sub->get_name();
    return fail(where, std::string(e.what()) + " (see " + where + " --help)", kExitUsage);
  }

  for (std::size_t i = 0; i < commands.size(); ++i) {
    if (!subcommands[i]->parsed()) continue;
    const std::string where = "sagitta " + commands[i].spec.name;
    try {
      Arguments args;
      bindings[i]->finish(args);
      install_cancel_handlers();
      return commands[i].run(args);
    } catch (const Cancelled&) {
      return fail(where, "cancelled", kExitCancelled);
    } catch (const sagitta::dicom::DicomError& e) {
      return fail(where, e.what(), kExitData);
    } catch (const sagitta::segmentation::SegmentationError& e) {
      return fail(where, e.what(), kExitData);
    } catch (const itk::ExceptionObject& e) {
      return fail(where, e.GetDescription(), kExitData);
    } catch (const std::bad_alloc&) {
      return fail(where, "out of memory", kExitData);
    } catch (const std::exception& e) {
      return fail(where, std::string("unexpected failure: ") + e.what(), kExitInternal);
    }
  }
  return kExitUsage;
}

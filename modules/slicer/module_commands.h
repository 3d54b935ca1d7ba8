#pragma once
// The Slicer CLI modules: each is a `sagitta` command whose parameter table is adapted to what
// Slicer's module description and calling convention need, and whose run also reports Slicer's
// "simple return parameters".
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "command.h"

namespace sagitta::slicer {

// Values of the return parameters (Parameter::is_return_value) by name, as Slicer reads them
// from --returnparameterfile: vectors are comma-separated.
using ReturnValues = std::map<std::string, std::string>;

struct ModuleCommand {
  std::string module;   // executable name, e.g. "SagittaSegment"
  std::string command;  // the `sagitta` subcommand, e.g. "segment"
  cli::CommandSpec spec;
  std::function<int(const cli::Arguments&, ReturnValues&)> run;
  bool reports_progress = false;  // the command prints Slicer's filter lines itself
};

// The modules Sagitta ships, by command name, in this order.
const std::vector<std::pair<std::string, std::string>>& module_names();  // {command, module}

// The module for `command`, or nullopt when no module runs that command.
std::optional<ModuleCommand> module_command(const std::string& command);

// Table changes every module gets: command-line-only parameters dropped, long flags in camelCase
// (Slicer refuses '-' in flags), files without a channel marked as inputs, multi-value
// positionals turned into one value (Slicer's GUI selects one volume per parameter).
cli::CommandSpec slicer_table(cli::CommandSpec spec);

// "crop-body" -> "cropBody".
std::string camel_case(const std::string& flag);

}  // namespace sagitta::slicer

#pragma once
// Binds a CommandSpec to a CLI11 subcommand: options, positionals, validators and help text
// all come from the parameter table.
#include <CLI/CLI.hpp>

#include "parameter_table.h"

namespace sagitta::cli {

// Adds the parameters of `spec` to `app`; after parsing, `finish(args)` fills `args`.
class Binding {
public:
  Binding(CLI::App& app, const CommandSpec& spec);
  void finish(Arguments& args) const;

private:
  const CommandSpec& spec_;
  std::map<std::string, std::vector<std::string>> raw_;
  std::map<std::string, bool> flags_;
};

}  // namespace sagitta::cli

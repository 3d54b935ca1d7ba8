#pragma once
// A `sagitta` subcommand: its parameter table and the function that runs it.
#include <functional>
#include <vector>

#include "parameter_table.h"

namespace sagitta::cli {

// Exit codes shared by every command (and the Slicer modules built from them).
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,  // a bug: an unexpected exception
  kExitUsage = 2,     // bad command line
  kExitData = 3,      // unreadable/invalid input data or unwritable output
  kExitCancelled = 4, // stopped by SIGTERM/SIGINT; nothing partial was left behind
};

struct Command {
  CommandSpec spec;
  std::function<int(const Arguments&)> run;
};

// Every command of the `sagitta` executable, in --help order.
std::vector<Command> all_commands();

// Per library (commands_<library>.cpp); all_commands() lists them.
std::vector<Command> dicom_commands();  // info, convert
std::vector<Command> segmentation_commands();  // segment
std::vector<Command> training_commands();  // train
std::vector<Command> viewer_commands();  // render, view, mesh
std::vector<Command> wsi_commands();  // wsi (segment, info, train-demo)
std::vector<Command> pacs_commands();  // pacs (echo, find, get, move, store)
std::vector<Command> explain_commands();  // explain
std::vector<Command> demo_commands();  // demo: the whole pipeline, chaining the commands above

// Runs the command `name` on an argument list exactly as if given on the command line after
// `sagitta name` (parsed and validated by its table). Throws std::invalid_argument for a bad list.
int run_command_line(const std::string& name, const std::vector<std::string>& args);

}  // namespace sagitta::cli

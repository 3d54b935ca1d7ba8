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
std::vector<Command> dicom_commands();  // info, convert, demo
std::vector<Command> segmentation_commands();  // segment
std::vector<Command> training_commands();  // train
std::vector<Command> viewer_commands();  // render, view, mesh
std::vector<Command> pacs_commands();  // pacs (echo, find, get, move, store)
std::vector<Command> explain_commands();  // explain

}  // namespace sagitta::cli

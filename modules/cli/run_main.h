#pragma once
// The body of every Sagitta executable: parse `<command> [options]` against the commands'
// parameter tables, run the one asked for, and turn any failure into the floor's exit code and
// one line on stderr ("<program> <command>: error: ...").
#include <exception>
#include <string>
#include <vector>

#include "command.h"

namespace sagitta::cli {

// Runs argv[1] (one of `commands`) with the rest of argv. `--commands` prints "name<TAB>title"
// lines for the `sagitta` front's table (used at build time).
int run_main(int argc, char** argv, const std::vector<Command>& commands);

// The one failure report: "<where>: error: <message>" (or "<where>: cancelled") on stderr, and
// the exit code of the floor's policy (sagitta::describe_failure). A cancellation request seen
// while failing counts as the cancel.
int report_failure(const std::string& where, const std::exception_ptr& error);
int report_failure(const std::string& where, const std::string& message, int exit_code);

}  // namespace sagitta::cli

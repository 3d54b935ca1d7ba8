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

// For processes that run networks: freed memory stays with malloc for reuse instead of going back
// to the kernel. Every window's forward pass allocates the same large activations again; from
// fresh pages the first touch costs ~10 us per 4 KiB here (a 117-class window's 123 MB of logits:
// ~0.3 s, more than the arithmetic), from reused ones nothing. Call first thing in main().
void keep_freed_memory();

// The one failure report: "<where>: error: <message>" (or "<where>: cancelled") on stderr, and
// the exit code of the floor's policy (sagitta::describe_failure). A cancellation request seen
// while failing counts as the cancel.
int report_failure(const std::string& where, const std::exception_ptr& error);
int report_failure(const std::string& where, const std::string& message, int exit_code);

// Runs `sagitta <args>` in a child process (the front that started this program,
// $SAGITTA_FRONT, else `sagitta` on the PATH) with stdout and stderr shared, and returns its exit
// code. `who` names the caller in errors. A command that needs another executable's libraries
// (segment --html needs VTK's pictures) runs that command this way.
int run_sagitta(const std::vector<std::string>& args, const std::string& who);

}  // namespace sagitta::cli

#pragma once
// Progress reporting and cancellation shared by every long-running command.
//
// One Progress object per command run. Its style is chosen once per process: a bar redrawn in
// place when stdout is a terminal, Slicer's `<filter-progress>` XML lines when the process runs as
// a Slicer CLI module (Slicer parses them from stdout to drive its progress bar), nothing
// otherwise (pipes, --json). Cancellation: SIGTERM/SIGINT set a flag (the handler does nothing
// else); long loops poll `cancel_requested()` through Progress::update, which returns false, and
// the command then throws Cancelled so that its staging area is removed and nothing partial stays.
#include <chrono>
#include <string>

#include "sagitta/core/error.h"

namespace sagitta::cli {

enum class ProgressStyle { Auto, None, Terminal, Slicer };

// The process-wide style: Auto (the default) means Terminal on a TTY, else None. Slicer module
// executables set Slicer before running their command.
void set_progress_style(ProgressStyle style);
ProgressStyle progress_style();

// SIGTERM and SIGINT request cancellation instead of killing the process. Idempotent.
void install_cancel_handlers();
bool cancel_requested();

// Thrown by commands that stop because cancellation was requested (the floor's error type); the
// executables exit with kExitCancelled and a one-line message.
using sagitta::Cancelled;

class Progress {
public:
  // `name` is the filter name Slicer shows (e.g. "Sagitta Segment"); `quiet` forces no output
  // (--no-progress, --json).
  Progress(std::string name, std::string comment, bool quiet = false);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Starts a stage that covers [from, to) of the whole run, e.g. stage("inference", 0.1, 0.9).
  void stage(const std::string& name, double from, double to);
  // Reports the fraction done of the current stage (0..1). Returns false once cancellation was
  // requested: the caller stops and throws Cancelled.
  bool update(double stage_fraction);
  // Same, from counts.
  bool update(long long done, long long total) { return update(total > 0 ? double(done) / double(total) : 1.0); }
  // Ends the run (also done by the destructor); prints the final line.
  void finish();

private:
  void emit(double overall, double stage_fraction, bool force);
  std::string name_, stage_;
  ProgressStyle style_;
  double from_ = 0, to_ = 1;
  std::chrono::steady_clock::time_point start_, last_emit_;
  bool finished_ = false;
};

}  // namespace sagitta::cli

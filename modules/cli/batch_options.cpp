// The batch commands' shared options and console (see batch_options.h).
#include "batch_options.h"

#include <fmt/format.h>

#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace sagitta::cli {

Parameter shard_parameter(const std::string& items) {
  Parameter p = parameter("shard", ParamType::String, "shard", "", "Shard",
                          "i/N: process every N-th of the " + items + " starting at the i-th (default: from "
                          "SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT when set, else all)");
  p.slicer = false;
  return p;
}

Parameter force_parameter(const std::string& items) {
  Parameter p = switch_option("force", "force", "Recompute", "Recompute " + items + " that are already complete");
  p.slicer = false;
  return p;
}

BatchConsole::BatchConsole(const std::string& title, const std::string& comment, bool quiet)
    : progress_(title, comment, quiet), tty_(::isatty(STDOUT_FILENO) && !quiet) {}

void BatchConsole::attach(batch::Job& job, std::size_t all_items, const std::string& items) {
  if (!job.shard.source.empty())
    fmt::print("shard {}/{} ({}): {} of {} {}\n", job.shard.index + 1, job.shard.count, job.shard.source,
               batch::shard_of(std::vector<int>(all_items), job.shard).size(), all_items, items);
  std::fflush(stdout);
  job.log = [this](const std::string& line) {
    if (tty_) fmt::print("\r\033[K");
    fmt::print("{}\n", line);
    std::fflush(stdout);
  };
  // One progress stage per item: the bar shows the item's progress and the batch's.
  job.starting = [this](const batch::Item& item, int k, int n) {
    progress_.stage(fmt::format("{}/{} {}", k + 1, n, item.id), double(k) / n, double(k + 1) / n);
  };
}

int BatchConsole::finish(const batch::Result& result, const std::string& where) {
  progress_.finish();
  for (const auto& row : result.rows)
    if (row.at("status") == "failed") std::cerr << where << ": " << row.at("message") << std::endl;
  if (!result.stopped.empty()) std::cerr << where << ": stopped: " << result.stopped << std::endl;
  fmt::print("{}\n", result.summary());
  std::fflush(stdout);
  return result.exit_code();
}

}  // namespace sagitta::cli

#pragma once
// What the batch commands (`segment --cohort`, `wsi segment`) share on the command line around
// the one batch runner (sagitta::batch): --shard and --force, the shard line, and the console
// (one line per item, a progress stage per item, failures on stderr, the summary).
#include <string>

#include "parameter_table.h"
#include "progress.h"
#include "sagitta/batch/batch.h"

namespace sagitta::cli {

// --shard i/N (command line only). `items` names what is split ("slides", "studies").
Parameter shard_parameter(const std::string& items);
// --force: recompute finished items.
Parameter force_parameter(const std::string& items);

// The console of a batch: fills the job's log and starting hooks, prints the shard line.
class BatchConsole {
public:
  // `title`/`comment` name the progress bar; quiet: no bar (--no-progress).
  BatchConsole(const std::string& title, const std::string& comment, bool quiet);
  void attach(batch::Job& job, std::size_t all_items, const std::string& items);
  // Per-item progress inside the current item's stage; false once cancellation was requested.
  bool update(double fraction) { return progress_.update(fraction); }
  // Failure lines on stderr (prefixed with `where`), the summary on stdout; the exit code.
  int finish(const batch::Result& result, const std::string& where);

private:
  Progress progress_;
  bool tty_ = false;
};

}  // namespace sagitta::cli

#pragma once
// The one batch runner of Sagitta's commands that work through a list of inputs
// (`sagitta segment --cohort`, `sagitta wsi segment`). It owns what every such batch needs and
// nothing of what an item is:
//  - the item list: a CSV manifest (id, input, optional reference), a plain list of paths, or one
//    item per sub-folder; ids checked up front (an id names the item's output folder);
//  - shards: `--shard i/N` or a Slurm job array (SLURM_ARRAY_TASK_ID/COUNT), every N-th item, so
//    array tasks never overlap and need no coordination;
//  - skipping items whose outputs are finished (the command says what finished means), so a
//    killed batch resumes where it stopped;
//  - per-item outputs that appear whole: an item writes into a hidden staging folder that is
//    renamed to OUTPUT/<id> in one step when the item succeeded, and removed otherwise (also the
//    leftovers of a killed run, when the item comes up again);
//  - the next item read while the current one runs (one prefetch thread, at most one item ahead);
//  - one failure line per bad item while the batch goes on; a full output disk stops the batch;
//  - the batch CSV (written atomically after every item) and the final exit code.
// Torch-free: it links the floor (sagitta::core) only.
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sagitta::batch {

// ---- items -----------------------------------------------------------------------------------

struct Item {
  std::string id;                    // the output folder's name; unique in the batch
  std::filesystem::path input;       // a file or folder (absolute, or relative to the working folder)
  std::filesystem::path reference;   // optional, e.g. a label map to evaluate against
  std::string origin;                // where it was listed, for messages ("cohort.csv line 4")
};

// A CSV manifest: `id,input[,reference]` per row; an optional header row whose first cell is
// "id"; blank lines and lines starting with '#' skipped; fields may be double-quoted; relative
// paths are relative to the manifest's folder. Throws UsageError (exit 2) for a manifest that
// cannot be read, a malformed row, or duplicate or unusable ids, naming every such row: nothing
// has been written then.
std::vector<Item> read_csv_manifest(const std::filesystem::path& manifest);

// One path per line (blank lines and '#' comments skipped; relative to the list's folder); the id
// is the file name without its extension. A path listed twice is one item. Throws UsageError when
// the list cannot be read.
std::vector<Item> read_path_list(const std::filesystem::path& list);
std::vector<Item> items_from_paths(const std::vector<std::filesystem::path>& paths);

// One item per sub-folder of `folder` (hidden ones skipped), in name order; id = sub-folder name.
std::vector<Item> items_from_folder(const std::filesystem::path& folder);

// Throws UsageError listing every duplicate id and every id that cannot name a folder (empty,
// ".", "..", starting with '.', containing '/'), with the rows or paths concerned.
void check_ids(const std::vector<Item>& items);

// ---- shards ----------------------------------------------------------------------------------

struct Shard {
  int index = 0, count = 1;  // 0-based index of `count`
  std::string source;        // "" (whole batch), "--shard" or "Slurm job array"
};

// "i/N" (1-based i) -> {i - 1, N}; throws UsageError.
Shard parse_shard(const std::string& text);
// The shard from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (or _MIN/_MAX, so arrays
// numbered from 1 work), when SLURM_ARRAY_TASK_ID is set; throws UsageError for an array with
// gaps or steps, which would leave items out.
std::optional<Shard> shard_from_slurm();
// `option` ("i/N") when given, else the Slurm job array's, else the whole batch.
Shard choose_shard(const std::string& option);
// Every count-th item starting at index: balanced, disjoint, and their union is the list.
template <class T>
std::vector<T> shard_of(const std::vector<T>& items, const Shard& shard) {
  std::vector<T> out;
  for (std::size_t k = std::size_t(shard.index); k < items.size(); k += std::size_t(shard.count)) out.push_back(items[k]);
  return out;
}

// ---- running ---------------------------------------------------------------------------------

// One CSV row by column key. The runner fills "id", "input", "reference", "status" (done, skipped,
// failed, pending), "message" and "seconds" (wall time of the item in this run); cells the
// command returns replace them. A cell "detail" is appended to the item's log line.
using Row = std::map<std::string, std::string>;

struct Column {
  std::string header, key;
};
// Columns whose header is their key.
std::vector<Column> columns(const std::vector<std::string>& keys);

struct Job {
  std::filesystem::path output;  // OUTPUT/<id> per item, and the batch CSV
  Shard shard;
  bool force = false;            // recompute finished items too
  bool prefetch = true;          // run `prepare` of the next item while the current one works
  std::vector<Column> columns;   // the batch CSV's columns
  std::string noun = "item";     // what an item is, in messages ("study", "slide")

  // The row of an item whose folder (OUTPUT/<id>, existing) holds finished outputs made the way
  // this batch would make them; nullopt: (re)compute it. Called on the main thread.
  std::function<std::optional<Row>(const Item&, const std::filesystem::path& folder)> finished;

  // The work of one item, in two parts. `prepare` reads what the item needs (on the prefetch
  // thread, while the previous item works: no LibTorch there) and returns the rest, which runs
  // on the main thread, writes every output of the item into `staging` (an empty folder that
  // becomes OUTPUT/<id> in one rename after it returns) and returns the item's cells. An
  // exception from either part fails the item alone (one line, the batch goes on) unless it is
  // sagitta::Cancelled, which stops the batch and is rethrown.
  using Work = std::function<Row(const std::filesystem::path& staging)>;
  std::function<Work(const Item&)> prepare;

  // Before an item's work: (item, position in this shard's list of items to run, how many).
  std::function<void(const Item&, int, int)> starting;
  // One line per item (done / skipped / failed) and for the batch's end.
  std::function<void(const std::string&)> log;
};

struct Result {
  std::vector<Row> rows;  // one per item of the shard, in list order
  int done = 0, skipped = 0, failed = 0, pending = 0;
  std::filesystem::path csv;
  std::string stopped;    // why the batch stopped before its end (a full disk), else empty
  int exit_code() const;  // 0, or 3 when an item failed or the batch stopped
  // "2 done, 1 skipped (already complete), 1 failed[, 3 not run]; report OUT/batch.csv"
  std::string summary() const;
};

// batch.csv, or batch-<i>-of-<N>.csv for a shard (array tasks never write the same file).
std::string csv_name(const Shard& shard);

// The rows of a batch CSV this runner wrote, as header -> cell (for pages and tools that read a
// finished batch). Throws Error when the file cannot be read or a quote is not closed.
std::vector<std::map<std::string, std::string>> read_batch_csv(const std::filesystem::path& csv);

// Runs the shard's items of `items` (already checked by check_ids). Throws UsageError for a
// shard that does not exist, Error when the output folder cannot be made, Cancelled when an item
// was cancelled (after removing its staging folder and writing the CSV).
Result run(const std::vector<Item>& items, const Job& job);

// The staging folder of `id` for this process, inside `output` (hidden).
std::filesystem::path staging_folder(const std::filesystem::path& output, const std::string& id);

}  // namespace sagitta::batch

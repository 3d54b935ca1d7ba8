// The batch runner shared by the list commands (see sagitta/batch/batch.h).
#include "sagitta/batch/batch.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <unistd.h>

#include "sagitta/core/atomic_output.h"
#include "sagitta/core/error.h"

namespace sagitta::batch {
namespace fs = std::filesystem;

namespace {

constexpr const char* kStagingPrefix = ".sagitta-partial-";
constexpr const char* kOldPrefix = ".sagitta-old-";

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  const auto start = s.find_first_not_of(" \t");
  return start == std::string::npos ? std::string() : s.substr(start);
}

// The cells of one CSV line (RFC 4180 quoting: "a ""b""" is a "b"); nullopt for an unclosed quote.
std::optional<std::vector<std::string>> split_csv(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') cells.back() += '"', ++i;
      else if (c == '"') quoted = false;
      else cells.back() += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      cells.emplace_back();
    } else {
      cells.back() += c;
    }
  }
  if (quoted) return std::nullopt;
  for (auto& c : cells) c = trim(c);
  return cells;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' || c == '\r' ? ' ' : c);
  return q + "\"";
}

std::optional<long> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end) throw UsageError(fmt::format("{}='{}' is not a number", name, v));
  return n;
}

fs::path relative_to(const fs::path& base, const std::string& text) {
  const fs::path p = text;
  return p.is_relative() ? base / p : p;
}

// Why `id` cannot name an output folder, or "".
std::string bad_id(const std::string& id) {
  if (id.empty()) return "an empty id";
  if (id == "." || id == "..") return "id '" + id + "'";
  if (id.front() == '.') return "id '" + id + "' starts with '.' (hidden names are the batch's own)";
  if (id.find('/') != std::string::npos || id.find('\0') != std::string::npos) return "id '" + id + "' contains '/'";
  return "";
}

// `name` is "<prefix><digits>-<id>" for an id of `ids`.
const std::string* leftover_of(const std::string& name, const std::set<std::string>& ids) {
  for (const char* prefix : {kStagingPrefix, kOldPrefix}) {
    const std::string p = prefix;
    if (name.compare(0, p.size(), p) != 0) continue;
    std::size_t k = p.size();
    while (k < name.size() && std::isdigit(static_cast<unsigned char>(name[k]))) ++k;
    if (k == p.size() || k >= name.size() || name[k] != '-') continue;
    const auto it = ids.find(name.substr(k + 1));
    if (it != ids.end()) return &*it;
  }
  return nullptr;
}

std::uintmax_t folder_bytes(const fs::path& folder) {
  std::uintmax_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

// Moves `staging` to `folder` in one rename; an older `folder` (other settings, --force) is moved
// aside first and removed after. A crash in between leaves no OUTPUT/<id>: the item is redone.
void commit(const fs::path& staging, const fs::path& folder) {
  std::error_code ec;
  if (fs::exists(folder, ec)) {
    const fs::path old = folder.parent_path() / (kOldPrefix + std::to_string(::getpid()) + "-" + folder.filename().string());
    fs::remove_all(old, ec);
    fs::rename(folder, old);
    fs::rename(staging, folder);
    fs::remove_all(old, ec);
  } else {
    fs::rename(staging, folder);
  }
}

void write_csv(const fs::path& path, const std::vector<Column>& cols, const std::vector<Row>& rows) {
  std::ostringstream s;
  for (std::size_t c = 0; c < cols.size(); ++c) s << (c ? "," : "") << csv_field(cols[c].header);
  s << "\n";
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < cols.size(); ++c) {
      const auto it = row.find(cols[c].key);
      s << (c ? "," : "") << (it == row.end() ? std::string() : csv_field(it->second));
    }
    s << "\n";
  }
  write_text_atomically(path, s.str());
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
  for (std::size_t at = s.find(from); !from.empty() && at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

// The item's failure as one line that names it and, unless the message does, its input. Paths
// inside the item's staging folder are named as the outputs they would have become.
std::string failure_line(const Job& job, const Item& item, const std::exception_ptr& error) {
  std::string message = describe_failure(error).message;
  const std::string staging = staging_folder(job.output, item.id).string(), folder = (job.output / item.id).string();
  replace_all(message, staging + "/" + kStagingPrefix + std::to_string(::getpid()), folder);  // a StagedOutputs inside
  replace_all(message, staging, folder);
  const std::string input = item.input.string();
  if (input.empty() || message.find(input) != std::string::npos) return job.noun + " " + item.id + ": " + message;
  return job.noun + " " + item.id + " (" + input + "): " + message;
}

bool is_cancel(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Cancelled&) {
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace

// ---- items -----------------------------------------------------------------------------------

std::vector<Item> read_csv_manifest(const fs::path& manifest) {
  std::ifstream f(manifest);
  if (!f) throw UsageError("manifest " + manifest.string() + ": cannot open");
  const fs::path base = fs::absolute(manifest).parent_path();
  std::vector<Item> items;
  std::vector<std::string> problems;
  int number = 0;
  bool first = true;
  for (std::string line; std::getline(f, line);) {
    ++number;
    const std::string t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    const std::string where = fmt::format("{} line {}", manifest.filename().string(), number);
    const auto cells = split_csv(t);
    if (first) {
      first = false;
      std::string head = cells && !cells->empty() ? cells->front() : "";
      std::transform(head.begin(), head.end(), head.begin(), [](unsigned char c) { return char(std::tolower(c)); });
      if (head == "id") continue;  // the header row
    }
    if (!cells || cells->size() < 2 || cells->size() > 3 || (*cells)[1].empty()) {
      problems.push_back(where + ": expected id,input[,label map]");
      continue;
    }
    Item item;
    item.id = (*cells)[0];
    item.input = relative_to(base, (*cells)[1]);
    if (cells->size() == 3 && !(*cells)[2].empty()) item.reference = relative_to(base, (*cells)[2]);
    item.origin = where;
    items.push_back(item);
  }
  if (!problems.empty()) {
    std::string all;
    for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
    throw UsageError("manifest " + manifest.string() + ": " + all);
  }
  check_ids(items);
  return items;
}

std::vector<Item> items_from_paths(const std::vector<fs::path>& paths) {
  std::vector<Item> items;
  std::set<fs::path> seen;
  for (const auto& p : paths) {
    if (!seen.insert(fs::absolute(p).lexically_normal()).second) continue;  // listed twice: one item
    Item item;
    item.id = p.stem().string();
    item.input = p;
    item.origin = p.string();
    items.push_back(item);
  }
  return items;
}

std::vector<Item> read_path_list(const fs::path& list) {
  std::ifstream f(list);
  if (!f) throw UsageError("manifest " + list.string() + ": cannot open");
  const fs::path base = fs::absolute(list).parent_path();
  std::vector<fs::path> paths;
  for (std::string line; std::getline(f, line);) {
    const std::string t = trim(line);
    if (t.empty() || t.front() == '#') continue;
    paths.push_back(relative_to(base, t));
  }
  return items_from_paths(paths);
}

std::vector<Item> items_from_folder(const fs::path& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) throw UsageError(folder.string() + ": not a folder");
  std::vector<Item> items;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.front() == '.' || !e.is_directory(ec)) continue;
    Item item;
    item.id = name;
    item.input = e.path();
    item.origin = e.path().string();
    items.push_back(item);
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.id < b.id; });
  return items;
}

void check_ids(const std::vector<Item>& items) {
  std::map<std::string, std::vector<std::string>> where;
  std::vector<std::string> problems;
  for (const auto& i : items) {
    const std::string origin = i.origin.empty() ? i.input.string() : i.origin;
    if (const std::string bad = bad_id(i.id); !bad.empty()) problems.push_back(origin + ": " + bad + " cannot name an output folder");
    where[i.id].push_back(origin);
  }
  for (const auto& [id, origins] : where) {
    if (origins.size() < 2 || id.empty()) continue;
    std::string list;
    for (const auto& o : origins) list += (list.empty() ? "" : ", ") + o;
    problems.push_back("duplicate id '" + id + "' (" + list + "): their outputs would collide");
  }
  if (problems.empty()) return;
  std::string all;
  for (const auto& p : problems) all += (all.empty() ? "" : "; ") + p;
  throw UsageError(all + "; nothing was run");
}

// ---- shards ----------------------------------------------------------------------------------

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument(text);
    std::size_t a = 0, b = 0;
    const int i = std::stoi(text.substr(0, slash), &a), n = std::stoi(text.substr(slash + 1), &b);
    if (a != slash || b != text.size() - slash - 1 || n < 1 || i < 1 || i > n) throw std::invalid_argument(text);
    return {i - 1, n, "--shard"};
  } catch (const std::exception&) {
    throw UsageError("--shard '" + text + "': expected i/N with 1 <= i <= N, e.g. 2/8");
  }
}

std::optional<Shard> shard_from_slurm() {
  const auto id = env_number("SLURM_ARRAY_TASK_ID");
  if (!id) return std::nullopt;
  const long min = env_number("SLURM_ARRAY_TASK_MIN").value_or(0);
  std::optional<long> count = env_number("SLURM_ARRAY_TASK_COUNT");
  if (!count) {
    if (const auto max = env_number("SLURM_ARRAY_TASK_MAX")) count = *max - min + 1;
  }
  if (!count) throw UsageError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
  // Arrays like --array=1-4 count from 1, --array=0-3 from 0: the index is the offset from the
  // minimum. An array with gaps or steps (--array=0-7:2) would leave items out: refused.
  if (*id < min || *id - min >= *count)
    throw UsageError(fmt::format("SLURM_ARRAY_TASK_ID {} is outside the array ({} tasks from {}); use a "
                                 "contiguous array such as --array=0-{}",
                                 *id, *count, min, *count - 1));
  return Shard{int(*id - min), int(*count), "Slurm job array"};
}

Shard choose_shard(const std::string& option) {
  if (!option.empty()) return parse_shard(option);
  if (auto slurm = shard_from_slurm()) return *slurm;
  return {};
}

// ---- running ---------------------------------------------------------------------------------

std::vector<Column> columns(const std::vector<std::string>& keys) {
  std::vector<Column> out;
  for (const auto& k : keys) out.push_back({k, k});
  return out;
}

int Result::exit_code() const { return failed || !stopped.empty() ? kExitData : kExitOk; }

std::string Result::summary() const {
  std::string s = fmt::format("{} done, {} skipped (already complete), {} failed", done, skipped, failed);
  if (pending) s += fmt::format(", {} not run", pending);
  return s + "; report " + csv.string();
}

std::vector<std::map<std::string, std::string>> read_batch_csv(const fs::path& csv) {
  std::ifstream in(csv);
  if (!in) throw Error(csv.string() + ": cannot read");
  std::vector<std::map<std::string, std::string>> rows;
  std::vector<std::string> header;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (trim(line).empty()) continue;
    const auto cells = split_csv(line);
    if (!cells) throw Error(fmt::format("{} line {}: a quote is not closed", csv.string(), n));
    if (header.empty()) {
      header = *cells;
      continue;
    }
    std::map<std::string, std::string> row;
    for (std::size_t c = 0; c < header.size() && c < cells->size(); ++c) row[header[c]] = (*cells)[c];
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string csv_name(const Shard& shard) {
  return shard.count == 1 ? std::string("batch.csv") : fmt::format("batch-{}-of-{}.csv", shard.index + 1, shard.count);
}

fs::path staging_folder(const fs::path& output, const std::string& id) {
  return output / (kStagingPrefix + std::to_string(::getpid()) + "-" + id);
}

Result run(const std::vector<Item>& items, const Job& job) {
  if (job.output.empty()) throw UsageError("no output folder");
  if (job.shard.count < 1 || job.shard.index < 0 || job.shard.index >= job.shard.count)
    throw UsageError(fmt::format("shard {} of {} does not exist", job.shard.index + 1, job.shard.count));
  // Ids name output folders: checked over the whole list, not just this shard, since two array
  // tasks could otherwise write one folder at once.
  check_ids(items);
  std::error_code ec;
  fs::create_directories(job.output, ec);
  if (ec) throw Error("cannot create the output folder " + job.output.string() + ": " + ec.message());
  auto log = [&](const std::string& line) {
    if (job.log) job.log(line);
  };

  Result r;
  r.csv = job.output / csv_name(job.shard);
  const std::vector<Item> mine = shard_of(items, job.shard);
  const auto tag = [&](std::size_t k) { return fmt::format("[{}/{}] {}", k + 1, mine.size(), mine[k].id); };

  // Leftovers of killed runs for this shard's items: this shard alone owns them.
  std::set<std::string> ids;
  for (const auto& i : mine) ids.insert(i.id);
  for (const auto& e : fs::directory_iterator(job.output, ec))
    if (leftover_of(e.path().filename().string(), ids)) fs::remove_all(e.path(), ec);

  std::vector<std::size_t> todo;
  for (std::size_t k = 0; k < mine.size(); ++k) {
    const Item& item = mine[k];
    Row row{{"id", item.id}, {"input", item.input.string()}, {"reference", item.reference.string()}, {"status", "pending"}};
    const fs::path folder = job.output / item.id;
    std::optional<Row> done;
    if (!job.force && job.finished && fs::is_directory(folder, ec)) done = job.finished(item, folder);
    if (done) {
      for (const auto& [key, value] : *done) row[key] = value;
      row["status"] = "skipped";
      row["message"] = "already complete";
      ++r.skipped;
      log(tag(k) + ": skipped (already complete)");
    } else {
      todo.push_back(k);
    }
    r.rows.push_back(row);
  }
  r.pending = int(todo.size());
  write_csv(r.csv, job.columns, r.rows);

  const auto launch = [&](std::size_t t) {
    const Item item = mine[todo[t]];
    return std::async(job.prefetch ? std::launch::async : std::launch::deferred, [&job, item] { return job.prepare(item); });
  };
  std::future<Job::Work> next;
  std::uintmax_t largest = 0;
  for (std::size_t t = 0; t < todo.size(); ++t) {
    const std::size_t k = todo[t];
    const Item& item = mine[k];
    Row& row = r.rows[k];
    const auto start = std::chrono::steady_clock::now();
    std::future<Job::Work> current = t == 0 ? launch(0) : std::move(next);
    if (job.starting) job.starting(item, int(t), int(todo.size()));
    std::exception_ptr failure;
    Job::Work work;
    try {
      work = current.get();
    } catch (...) {
      failure = std::current_exception();
    }
    // The next item is read while this one works: at most one read at a time, two items in memory.
    if (t + 1 < todo.size() && !(failure && is_cancel(failure))) next = launch(t + 1);
    const fs::path staging = staging_folder(job.output, item.id);
    Row cells;
    if (!failure) {
      try {
        fs::remove_all(staging);
        fs::create_directories(staging);
        cells = work(staging);
        work = nullptr;  // the item's data goes before the next item's work
        commit(staging, job.output / item.id);
      } catch (...) {
        failure = std::current_exception();
      }
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    --r.pending;
    if (!failure) {
      row["seconds"] = fmt::format("{:.3f}", seconds);
      for (const auto& [key, value] : cells) row[key] = value;
      row["status"] = "done";
      ++r.done;
      largest = std::max(largest, folder_bytes(job.output / item.id));
      const auto detail = cells.find("detail");
      log(fmt::format("{}: done in {:.1f} s{}", tag(k), seconds,
                      detail == cells.end() || detail->second.empty() ? std::string() : " (" + detail->second + ")"));
    } else {
      // Space left while the failed item's files still take theirs: a full disk stops the batch
      // (every next item would fail the same way) instead of failing the rest one by one.
      const auto space = fs::space(job.output, ec);
      const std::uintmax_t needed = std::max<std::uintmax_t>(largest, 1u << 20);
      fs::remove_all(staging, ec);
      if (is_cancel(failure)) {
        ++r.pending;
        write_csv(r.csv, job.columns, r.rows);
        std::rethrow_exception(failure);  // `next` is waited for by its destructor
      }
      row["status"] = "failed";
      row["message"] = failure_line(job, item, failure);
      row["seconds"] = fmt::format("{:.3f}", seconds);
      ++r.failed;
      log(tag(k) + ": FAILED: " + row["message"]);
      if (!ec && space.available < needed)
        r.stopped = fmt::format("the output folder {} is full ({:.1f} MiB free, the largest {} so far took {:.1f} MiB): "
                                "stopped with {} not run; free space and run the same command again to finish",
                                job.output.string(), double(space.available) / 1048576.0, job.noun,
                                double(largest) / 1048576.0, r.pending);
    }
    write_csv(r.csv, job.columns, r.rows);  // a killed batch still reports what it did
    if (!r.stopped.empty()) {
      log("stopped: " + r.stopped);
      break;
    }
  }
  if (next.valid()) next.wait();
  return r;
}

}  // namespace sagitta::batch

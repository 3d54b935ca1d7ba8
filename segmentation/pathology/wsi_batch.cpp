// Batches of slides: manifests, shards (--shard i/N or a Slurm job array), idempotent and
// resumable runs (a slide is complete when its summary exists with the same settings), and the
// batch CSV. No scheduler of our own: each process (one per array task) takes its share of the
// list by position, so shards never overlap and need no coordination.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <unistd.h>

#include "sagitta/segmentation/error.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/segmentation/wsi.h"

namespace sagitta::segmentation::wsi {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c == '\n' ? ' ' : c);
  return q + "\"";
}

std::optional<long> env_number(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end) throw SegmentationError(fmt::format("{}='{}' is not a number", name, v));
  return n;
}

// The summary of a finished slide, when it exists, parses, and was made with `settings`.
// --assume-mpp is not part of the settings (it only matters for slides without a resolution);
// a slide segmented at an assumed resolution is complete only for the same assumption.
std::optional<json> complete_summary(const fs::path& summary, const json& settings, std::optional<double> assume_mpp) {
  std::error_code ec;
  if (!fs::is_regular_file(summary, ec)) return std::nullopt;
  std::ifstream f(summary);
  try {
    json j = json::parse(f);
    if (j.value("settings", json()) != settings) return std::nullopt;
    if (j.value("mpp_source", std::string()).rfind("assumed", 0) == 0 && (!assume_mpp || j.value("mpp", 0.0) != *assume_mpp))
      return std::nullopt;
    return j;
  } catch (const json::exception&) {
    return std::nullopt;  // not ours or damaged: recompute
  }
}

void write_csv(const fs::path& path, const std::vector<BatchEntry>& entries, const ModelCard& card) {
  std::ostringstream s;
  s << "slide,name,status,message,tissue_area_mm2,tiles_total,tiles_segmented,seconds";
  for (const auto& l : card.labels) s << "," << csv_field("area_" + l.name + "_mm2");
  s << "\n";
  for (const auto& e : entries) {
    s << csv_field(e.slide.string()) << "," << csv_field(e.name) << "," << e.status << "," << csv_field(e.message);
    if (e.summary.is_object()) {
      s << "," << e.summary["tissue"]["area_mm2"].get<double>() << "," << e.summary["tiles"]["total"].get<long long>() << ","
        << e.summary["tiles"]["segmented"].get<long long>() << "," << e.summary["timing"]["seconds"].get<double>();
      std::map<int, double> area;
      for (const auto& c : e.summary["classes"]) area[c["value"].get<int>()] = c["area_mm2"].get<double>();
      for (const auto& l : card.labels) s << "," << area[l.value];
    } else {
      s << ",,,,";
      for (std::size_t k = 0; k < card.labels.size(); ++k) s << ",";
    }
    s << "\n";
  }
  write_text_atomically(path, s.str());
}

}  // namespace

std::string slide_name(const fs::path& slide) { return slide.stem().string(); }

std::vector<fs::path> read_manifest(const fs::path& manifest) {
  std::ifstream f(manifest);
  if (!f) throw SegmentationError("manifest " + manifest.string() + ": cannot open");
  std::vector<fs::path> slides;
  const fs::path base = fs::absolute(manifest).parent_path();
  for (std::string line; std::getline(f, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    const auto start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    fs::path p = line.substr(start);
    slides.push_back(p.is_relative() ? base / p : p);
  }
  return slides;
}

std::pair<int, int> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  try {
    if (slash == std::string::npos) throw std::invalid_argument(text);
    std::size_t a = 0, b = 0;
    const int i = std::stoi(text.substr(0, slash), &a), n = std::stoi(text.substr(slash + 1), &b);
    if (a != slash || b != text.size() - slash - 1 || n < 1 || i < 1 || i > n) throw std::invalid_argument(text);
    return {i - 1, n};
  } catch (const std::exception&) {
    throw SegmentationError("--shard '" + text + "': expected i/N with 1 <= i <= N, e.g. 2/8");
  }
}

std::optional<std::pair<int, int>> shard_from_slurm() {
  const auto id = env_number("SLURM_ARRAY_TASK_ID");
  if (!id) return std::nullopt;
  const long min = env_number("SLURM_ARRAY_TASK_MIN").value_or(0);
  std::optional<long> count = env_number("SLURM_ARRAY_TASK_COUNT");
  if (!count) {
    if (const auto max = env_number("SLURM_ARRAY_TASK_MAX")) count = *max - min + 1;
  }
  if (!count) throw SegmentationError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
  // Arrays like --array=1-4 count from 1, --array=0-3 from 0; the index is the offset from the minimum.
  // An array with gaps or steps (--array=0-7:2) would leave shards out: refuse it.
  if (*id < min || *id - min >= *count)
    throw SegmentationError(fmt::format("SLURM_ARRAY_TASK_ID {} is outside the array ({} tasks from {}); use a "
                                        "contiguous array such as --array=0-{}",
                                        *id, *count, min, *count - 1));
  return std::make_pair(int(*id - min), int(*count));
}

std::vector<fs::path> shard_slides(const std::vector<fs::path>& slides, int index, int count) {
  std::vector<fs::path> out;
  for (std::size_t k = std::size_t(index); k < slides.size(); k += std::size_t(count)) out.push_back(slides[k]);
  return out;
}

BatchResult run_batch(const Model& model, const std::vector<fs::path>& slides, const BatchOptions& o) {
  if (o.output.empty()) throw SegmentationError("no output folder");
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count)
    throw SegmentationError(fmt::format("shard {} of {} does not exist", o.shard_index + 1, o.shard_count));
  // Output folders are named after the slides: two slides with one name would overwrite each other
  // (possibly from two array tasks at once), so the whole list is checked, not just this shard.
  std::map<std::string, fs::path> names;
  for (const auto& s : slides) {
    const auto [it, inserted] = names.emplace(slide_name(s), s);
    if (!inserted && fs::absolute(it->second) != fs::absolute(s))
      throw SegmentationError(fmt::format("slides {} and {} have the same name '{}': their outputs would collide; "
                                          "rename one",
                                          it->second.string(), s.string(), slide_name(s)));
  }
  std::error_code ec;
  fs::create_directories(o.output, ec);
  if (ec) throw SegmentationError("cannot create " + o.output.string() + ": " + ec.message());

  BatchResult result;
  result.csv = o.output / (o.shard_count == 1 ? std::string("batch.csv")
                                              : fmt::format("batch-{}-of-{}.csv", o.shard_index + 1, o.shard_count));
  const std::vector<fs::path> mine = shard_slides(slides, o.shard_index, o.shard_count);
  const json settings = output_settings(model.card(), o.wsi);
  auto log = [&](const std::string& line) {
    if (o.log) o.log(line);
  };
  for (std::size_t k = 0; k < mine.size(); ++k) {
    BatchEntry e;
    e.slide = mine[k];
    e.name = slide_name(mine[k]);
    const fs::path folder = o.output / e.name;
    const std::string tag = fmt::format("[{}/{}] {}", k + 1, mine.size(), e.name);
    if (!o.force) {
      if (auto summary = complete_summary(SlideOutputs::in(folder).summary, settings, o.wsi.assume_mpp)) {
        e.status = "skipped";
        e.message = "already complete";
        e.summary = *summary;
        ++result.skipped;
        log(tag + ": skipped (already complete)");
        result.entries.push_back(e);
        continue;
      }
    }
    if (o.progress && !o.progress(int(k), int(mine.size()), e.name, 0.0)) throw Stopped();
    WsiOptions wo = o.wsi;
    wo.progress = [&](long long done, long long total) {
      if (o.wsi.progress && !o.wsi.progress(done, total)) return false;
      return !o.progress || o.progress(int(k), int(mine.size()), e.name, total ? double(done) / double(total) : 1.0);
    };
    try {
      // A stale summary (other settings) must not mark the slide complete if this run dies.
      fs::remove(SlideOutputs::in(folder).summary, ec);
      e.summary = segment_slide(model, mine[k], folder, wo);
      e.status = "done";
      ++result.done;
      log(fmt::format("{}: done in {:.1f} s ({} of {} tiles segmented, tissue {:.2f} mm2)", tag,
                      e.summary["timing"]["seconds"].get<double>(), e.summary["tiles"]["segmented"].get<long long>(),
                      e.summary["tiles"]["total"].get<long long>(), e.summary["tissue"]["area_mm2"].get<double>()));
    } catch (const Stopped&) {
      throw;
    } catch (const std::exception& ex) {
      e.status = "failed";
      e.message = ex.what();
      // One line that names the slide, whatever raised it.
      std::replace(e.message.begin(), e.message.end(), '\n', ' ');
      if (e.message.find(mine[k].string()) == std::string::npos) e.message = "slide " + mine[k].string() + ": " + e.message;
      ++result.failed;
      log(tag + ": FAILED: " + e.message);
    }
    result.entries.push_back(e);
    write_csv(result.csv, result.entries, model.card());  // a killed batch still reports what it did
  }
  write_csv(result.csv, result.entries, model.card());
  return result;
}

}  // namespace sagitta::segmentation::wsi

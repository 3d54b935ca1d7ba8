// `sagitta segment --cohort` end to end with the threshold model on small synthetic CTs (and the
// shipped demo DICOM series): outputs identical to single runs, the batch CSV (volumes, Dice),
// bad studies as one line each while the batch goes on, duplicate ids refused, a SIGKILLed batch
// resuming to byte-identical outputs, shards whose union is the cohort (--shard and Slurm's
// variables), and a full output disk that stops the batch cleanly and a rerun that finishes it.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "phantoms.h"
#include "sagitta/core/volume_io.h"
#include "script_models.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using sagitta::testing::read_file;
using sagitta::testing::shell_quote;
using nlohmann::json;
using sagitta::testing::run_command;
using sagitta::testing::scratch_dir;

std::vector<std::map<std::string, std::string>> read_csv(const fs::path& p) {
  std::vector<std::map<std::string, std::string>> rows;
  std::ifstream f(p);
  std::vector<std::string> header;
  for (std::string line; std::getline(f, line);) {
    std::vector<std::string> cells;
    std::string cell;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) cells.push_back(cell), cell.clear();
      else cell += c;
    }
    cells.push_back(cell);
    if (header.empty()) {
      header = cells;
      continue;
    }
    std::map<std::string, std::string> row;
    for (std::size_t k = 0; k < header.size() && k < cells.size(); ++k) row[header[k]] = cells[k];
    rows.push_back(row);
  }
  return rows;
}

int count_lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

// Hidden files or folders anywhere below `dir` (staging areas, temporaries).
std::vector<std::string> hidden_entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().front() == '.') out.push_back(e.path().string());
  return out;
}

// A small CT: a dense ball (400 HU in -50) whose place and size vary with `k`, and its truth.
void write_study(const fs::path& dir, int k, std::array<unsigned, 3> size = {40, 36, 24}) {
  const double cx = 12 + 2.5 * k, cy = 14 + 1.5 * (k % 4), cz = 9 + (k % 3), r = 5 + (k % 3);
  auto inside = [=](double x, double y, double z) { return (x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz) < r * r; };
  auto ct = sagitta::testing::make_volume(size, {0.9, 0.9, 1.2}, [&](double x, double y, double z) { return inside(x, y, z) ? 400.f : -50.f; });
  auto truth = sagitta::testing::make_volume(size, {0.9, 0.9, 1.2}, [&](double x, double y, double z) { return inside(x, y, z) ? 1.f : 0.f; });
  sagitta::WriteOptions wo;
  wo.pixel_type = sagitta::OutputPixelType::Float;
  sagitta::write_volumes({ct}, dir / ("ct_" + std::to_string(k) + ".nrrd"), wo);
  sagitta::write_volumes({truth}, dir / ("truth_" + std::to_string(k) + ".nrrd"), {sagitta::OutputPixelType::Auto, true});
}

// n studies s0..s{n-1} with truths, and their manifest.
fs::path write_cohort(const fs::path& dir, int n, std::array<unsigned, 3> size = {40, 36, 24}) {
  fs::create_directories(dir);
  std::ofstream m(dir / "cohort.csv");
  m << "id,input,labels\n";
  for (int k = 0; k < n; ++k) {
    write_study(dir, k, size);
    m << "s" << k << ",ct_" << k << ".nrrd,truth_" << k << ".nrrd\n";
  }
  return dir / "cohort.csv";
}

std::string sagitta_segment() { return shell_quote(sagitta::testing::sagitta_executable()) + " segment --no-progress --threads 2 "; }

class CohortCli : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = scratch_dir();
    card_ = sagitta::testing::write_threshold_model(dir_ / "model");
  }
  std::string cohort(const fs::path& manifest, const fs::path& out, const std::string& extra = "") const {
    return sagitta_segment() + "--cohort " + shell_quote(manifest) + " --model " + shell_quote(card_) + " -o " + shell_quote(out) + " " + extra;
  }
  fs::path dir_, card_;
};

TEST_F(CohortCli, OutputsEqualSingleRunsAndTheCsvHasVolumesAndDice) {
  const fs::path manifest = write_cohort(dir_ / "cohort", 3);
  const fs::path demo = sagitta::testing::source_dir() / "testdata/demo/ct_phantom";
  ASSERT_TRUE(fs::exists(demo));
  std::ofstream(manifest, std::ios::app) << "demo," << demo.string() << "\n";  // a DICOM folder, no label map
  const auto r = run_command(cohort(manifest, dir_ / "out", "--probabilities"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("4 done, 0 skipped (already complete), 0 failed"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;

  const auto rows = read_csv(dir_ / "out" / "batch.csv");
  ASSERT_EQ(rows.size(), 4u);
  for (int k = 0; k < 3; ++k) {
    const auto& row = rows[std::size_t(k)];
    EXPECT_EQ(row.at("id"), "s" + std::to_string(k));
    EXPECT_EQ(row.at("status"), "done");
    EXPECT_GT(std::stod(row.at("volume_dense_ml")), 0.3) << k;
    EXPECT_GT(std::stod(row.at("dice_dense")), 0.85) << k;  // the threshold model finds the ball
    EXPECT_GT(std::stod(row.at("seconds")), 0.0);
  }
  EXPECT_EQ(rows[3].at("dice_dense"), "");  // no label map given
  EXPECT_EQ(rows[3].at("status"), "done");
  const json report = json::parse(std::ifstream(dir_ / "out" / "s1" / "report.json"));
  EXPECT_EQ(report["batch"]["id"], "s1");
  EXPECT_EQ(report["command"], "segment");
  EXPECT_NEAR(report["batch"]["dice"]["dense"].get<double>(), std::stod(rows[1].at("dice_dense")), 1e-4);
  EXPECT_TRUE(hidden_entries(dir_ / "out").empty());

  // Each study's volumes are byte for byte those of `sagitta segment` on that study alone.
  const std::vector<std::pair<std::string, fs::path>> studies = {
      {"s0", dir_ / "cohort/ct_0.nrrd"}, {"s2", dir_ / "cohort/ct_2.nrrd"}, {"demo", demo}};
  for (const auto& [id, input] : studies) {
    const fs::path single = dir_ / ("single_" + id);
    const auto s = run_command(sagitta_segment() + shell_quote(input) + " --model " + shell_quote(card_) + " -o " + shell_quote(single) + " --probabilities");
    ASSERT_EQ(s.exit_code, 0) << s.err;
    for (const char* file : {"labels.nrrd", "probabilities.nrrd"})
      EXPECT_EQ(read_file(single / file), read_file(dir_ / "out" / id / file)) << id << "/" << file;
    json a = json::parse(std::ifstream(single / "report.json")), b = report;
    b = json::parse(std::ifstream(dir_ / "out" / id / "report.json"));
    EXPECT_EQ(a["labels"], b["labels"]) << id;
    EXPECT_EQ(a["outputs"], b["outputs"]) << id;
  }
}

TEST_F(CohortCli, BadStudiesAreOneLineEachAndTheOthersComplete) {
  const fs::path manifest = write_cohort(dir_ / "cohort", 2);
  auto nan = sagitta::testing::make_volume({20, 20, 20}, {1, 1, 1}, [](double x, double, double) { return x > 10 ? NAN : 0.f; });
  sagitta::WriteOptions wo;
  wo.pixel_type = sagitta::OutputPixelType::Float;
  sagitta::write_volumes({nan}, dir_ / "cohort" / "nan.nrrd", wo);
  std::ofstream(manifest, std::ios::app) << "gone,nowhere/ct.nrrd\n"
                                         << "nan,nan.nrrd\n"
                                         << "wrong_grid,ct_0.nrrd,nan.nrrd\n"
                                         << "no_labels,ct_1.nrrd,missing_truth.nrrd\n";
  const auto r = run_command(cohort(manifest, dir_ / "out"));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 4) << r.err;  // one line per bad study
  for (const char* needle : {"study gone: input", "nowhere/ct.nrrd does not exist (cohort.csv line 4)", "study nan (", "NaN",
                             "study wrong_grid (", "not on the input's grid", "study no_labels (", "missing_truth.nrrd does not exist"})
    EXPECT_NE(r.err.find(needle), std::string::npos) << needle << "\n" << r.err;
  EXPECT_NE(r.out.find("2 done, 0 skipped (already complete), 4 failed"), std::string::npos) << r.out;
  const auto rows = read_csv(dir_ / "out" / "batch.csv");
  ASSERT_EQ(rows.size(), 6u);
  std::vector<std::string> status;
  for (const auto& row : rows) status.push_back(row.at("status"));
  EXPECT_EQ(status, (std::vector<std::string>{"done", "done", "failed", "failed", "failed", "failed"}));
  EXPECT_NE(rows[3].at("message").find("NaN"), std::string::npos);
  for (const char* id : {"gone", "nan", "wrong_grid", "no_labels"}) EXPECT_FALSE(fs::exists(dir_ / "out" / id)) << id;
  EXPECT_TRUE(hidden_entries(dir_ / "out").empty());

  // One study per sub-folder: a DICOM series and a folder without one.
  const fs::path folder = dir_ / "folder";
  fs::create_directories(folder / "junk");
  fs::copy(sagitta::testing::source_dir() / "testdata/demo/ct_phantom", folder / "phantom");
  std::ofstream(folder / "junk" / "notes.txt") << "no images here";
  const auto f = run_command(cohort(folder, dir_ / "out_folder"));
  EXPECT_EQ(f.exit_code, 3) << f.out << f.err;
  EXPECT_EQ(count_lines(f.err), 1) << f.err;
  EXPECT_NE(f.err.find("study junk"), std::string::npos) << f.err;
  EXPECT_TRUE(fs::exists(dir_ / "out_folder" / "phantom" / "labels.nrrd"));
  EXPECT_FALSE(fs::exists(dir_ / "out_folder" / "junk"));
}

TEST_F(CohortCli, DuplicateIdsAreRefusedBeforeAnythingIsWritten) {
  const fs::path manifest = write_cohort(dir_ / "cohort", 2);
  std::ofstream(manifest, std::ios::app) << "s0,ct_1.nrrd\n";
  const auto r = run_command(cohort(manifest, dir_ / "out"));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("duplicate id 's0' (cohort.csv line 2, cohort.csv line 4)"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  // Input files with --cohort: a usage error too.
  const auto both = run_command(cohort(manifest, dir_ / "out", shell_quote(dir_ / "cohort/ct_0.nrrd")));
  EXPECT_EQ(both.exit_code, 2) << both.err;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(CohortCli, KilledBatchResumesToIdenticalOutputs) {
  const int n = 8;
  const fs::path manifest = write_cohort(dir_ / "cohort", n, {64, 64, 48});
  const auto clean = run_command(cohort(manifest, dir_ / "clean", "--probabilities"));
  ASSERT_EQ(clean.exit_code, 0) << clean.out << clean.err;

  // Start, wait for the first study, SIGKILL (no chance to clean up) mid-batch.
  const auto started = run_command(cohort(manifest, dir_ / "resumed", "--probabilities") + " >/dev/null 2>&1 & echo $!");
  const int pid = std::stoi(started.out);
  const fs::path first = dir_ / "resumed/s0/report.json";
  for (int i = 0; i < 6000 && !fs::exists(first); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_TRUE(fs::exists(first)) << "the first study never finished";
  ::kill(pid, SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int complete = 0;
  for (int k = 0; k < n; ++k) complete += fs::exists(dir_ / "resumed" / ("s" + std::to_string(k)) / "report.json");
  ASSERT_LT(complete, n) << "the batch finished before it was killed";
  // What a kill leaves: whole study folders and, at most, one hidden staging folder.
  for (const auto& e : fs::directory_iterator(dir_ / "resumed")) {
    const std::string name = e.path().filename().string();
    if (name.front() == '.') {
      EXPECT_EQ(name.rfind(".sagitta-partial-", 0), 0u) << name;
    } else if (e.is_directory()) {
      EXPECT_TRUE(fs::exists(e.path() / "report.json")) << "partial study " << name;
    }
  }
  const auto first_time = fs::last_write_time(first);

  const auto resumed = run_command(cohort(manifest, dir_ / "resumed", "--probabilities"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.out << resumed.err;
  EXPECT_NE(resumed.out.find(std::to_string(n - complete) + " done, " + std::to_string(complete) + " skipped"), std::string::npos)
      << resumed.out;
  EXPECT_NE(resumed.out.find("s0: skipped (already complete)"), std::string::npos) << resumed.out;
  EXPECT_EQ(fs::last_write_time(first), first_time);  // not rewritten
  EXPECT_TRUE(hidden_entries(dir_ / "resumed").empty());
  for (int k = 0; k < n; ++k) {
    const std::string id = "s" + std::to_string(k);
    for (const char* file : {"labels.nrrd", "probabilities.nrrd"})
      EXPECT_EQ(read_file(dir_ / "clean" / id / file), read_file(dir_ / "resumed" / id / file)) << id << "/" << file;
    json a = json::parse(std::ifstream(dir_ / "clean" / id / "report.json"));
    json b = json::parse(std::ifstream(dir_ / "resumed" / id / "report.json"));
    a.erase("timings_s"), b.erase("timings_s");  // only the timings may differ
    EXPECT_EQ(a, b) << id;
  }
  // Other settings are not "finished": the studies are recomputed, and replaced whole.
  const auto other = run_command(cohort(manifest, dir_ / "resumed", "--probabilities --largest-component"));
  ASSERT_EQ(other.exit_code, 0) << other.err;
  EXPECT_NE(other.out.find(std::to_string(n) + " done, 0 skipped"), std::string::npos) << other.out;
}

TEST_F(CohortCli, ShardsTogetherAreTheWholeCohortAndSlurmPicksTheShard) {
  const int n = 5;
  const fs::path manifest = write_cohort(dir_ / "cohort", n);
  const auto whole = run_command(cohort(manifest, dir_ / "whole"));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;
  const auto first = run_command(cohort(manifest, dir_ / "sharded", "--shard 1/2"));
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_NE(first.out.find("shard 1/2 (--shard): 3 of 5 studies"), std::string::npos) << first.out;
  const auto second = run_command("env SLURM_ARRAY_TASK_ID=1 SLURM_ARRAY_TASK_COUNT=2 " + cohort(manifest, dir_ / "sharded"));
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.out.find("shard 2/2 (Slurm job array): 2 of 5 studies"), std::string::npos) << second.out;

  std::map<std::string, int> done;
  for (const char* csv : {"batch-1-of-2.csv", "batch-2-of-2.csv"})
    for (const auto& row : read_csv(dir_ / "sharded" / csv)) {
      EXPECT_EQ(row.at("status"), "done") << csv;
      ++done[row.at("id")];
    }
  ASSERT_EQ(done.size(), std::size_t(n));
  for (const auto& [id, count] : done) {
    EXPECT_EQ(count, 1) << id;
    EXPECT_EQ(read_file(dir_ / "whole" / id / "labels.nrrd"), read_file(dir_ / "sharded" / id / "labels.nrrd")) << id;
  }
  // A shard that does not exist and a Slurm array with a gap are refused.
  EXPECT_EQ(run_command(cohort(manifest, dir_ / "bad", "--shard 3/2")).exit_code, 2);
  EXPECT_EQ(run_command("env SLURM_ARRAY_TASK_ID=4 SLURM_ARRAY_TASK_COUNT=2 " + cohort(manifest, dir_ / "bad")).exit_code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

// A size-limited tmpfs as the output folder (needs root; skips otherwise).
class SmallDisk {
public:
  SmallDisk(const fs::path& at, std::uintmax_t bytes) : at_(at) {
    fs::create_directories(at);
    mounted_ = ::mount("tmpfs", at.c_str(), "tmpfs", 0, ("size=" + std::to_string(bytes)).c_str()) == 0;
  }
  ~SmallDisk() {
    if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
  }
  bool mounted() const { return mounted_; }
  bool grow(std::uintmax_t bytes) {
    return ::mount("tmpfs", at_.c_str(), "tmpfs", MS_REMOUNT, ("size=" + std::to_string(bytes)).c_str()) == 0;
  }

private:
  fs::path at_;
  bool mounted_ = false;
};

std::uintmax_t used_bytes(const fs::path& folder) {
  std::uintmax_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(folder))
    if (e.is_regular_file()) total += (e.file_size() + 4095) / 4096 * 4096;
  return total;
}

TEST_F(CohortCli, FullDiskStopsTheBatchCleanlyAndTheRerunFinishes) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a size-limited tmpfs needs root";
  const int n = 5;
  const fs::path manifest = write_cohort(dir_ / "cohort", n, {64, 64, 48});
  const auto reference = run_command(cohort(manifest, dir_ / "reference", "--probabilities"));
  ASSERT_EQ(reference.exit_code, 0) << reference.err;
  // Room for the first two studies and half of the third.
  const std::uintmax_t room = used_bytes(dir_ / "reference/s0") + used_bytes(dir_ / "reference/s1") +
                              used_bytes(dir_ / "reference/s2") / 2 + 16 * 4096;
  SmallDisk disk(dir_ / "small", room);
  if (!disk.mounted()) GTEST_SKIP() << "cannot mount a tmpfs here";
  const fs::path out = dir_ / "small" / "out";

  const auto full = run_command(cohort(manifest, out, "--probabilities"));
  EXPECT_EQ(full.exit_code, 3) << full.out << full.err;
  EXPECT_NE(full.err.find("study s2 ("), std::string::npos) << full.err;
  EXPECT_EQ(full.err.find(".sagitta-partial"), std::string::npos) << "names a staging path:\n" << full.err;
  EXPECT_NE(full.err.find("is full"), std::string::npos) << full.err;
  EXPECT_NE(full.err.find("run the same command again"), std::string::npos) << full.err;
  EXPECT_TRUE(fs::exists(out / "s0" / "report.json"));
  EXPECT_TRUE(fs::exists(out / "s1" / "report.json"));
  for (const char* id : {"s2", "s3", "s4"}) EXPECT_FALSE(fs::exists(out / id)) << id;
  EXPECT_TRUE(hidden_entries(out).empty()) << "partial files left on the full disk";
  const auto rows = read_csv(out / "batch.csv");
  ASSERT_EQ(rows.size(), std::size_t(n));
  EXPECT_EQ(rows[2].at("status"), "failed");
  EXPECT_EQ(rows[3].at("status"), "pending");

  ASSERT_TRUE(disk.grow(64u << 20));
  const auto rerun = run_command(cohort(manifest, out, "--probabilities"));
  ASSERT_EQ(rerun.exit_code, 0) << rerun.out << rerun.err;
  EXPECT_NE(rerun.out.find("3 done, 2 skipped"), std::string::npos) << rerun.out;
  for (int k = 0; k < n; ++k) {
    const std::string id = "s" + std::to_string(k);
    for (const char* file : {"labels.nrrd", "probabilities.nrrd"})
      EXPECT_EQ(read_file(dir_ / "reference" / id / file), read_file(out / id / file)) << id << "/" << file;
  }
  EXPECT_TRUE(hidden_entries(out).empty());
}

}  // namespace

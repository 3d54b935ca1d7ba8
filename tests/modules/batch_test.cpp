// The shared batch runner (sagitta::batch) on its own, with work that writes small files: item
// lists, ids, shards and Slurm arrays, per-item folders that appear whole, failures as one line,
// skipping finished items, leftovers of killed runs, cancellation, and the prefetch of the next item.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "sagitta/batch/batch.h"
#include "sagitta/core/error.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using sagitta::testing::read_file;
namespace batch = sagitta::batch;
using sagitta::testing::scratch_dir;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) out.push_back(l);
  return out;
}

std::vector<std::string> hidden_entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().front() == '.') out.push_back(e.path().string());
  return out;
}

std::vector<batch::Item> items(const std::vector<std::string>& ids) {
  std::vector<batch::Item> out;
  for (const auto& id : ids) out.push_back({id, "inputs/x_" + id, {}, "test " + id});
  return out;
}

// Work that writes a.txt and b.txt; items whose id starts with "bad" fail after writing a.txt.
batch::Job job_in(const fs::path& output, std::vector<std::string>* log = nullptr) {
  batch::Job job;
  job.output = output;
  job.noun = "study";
  job.columns = batch::columns({"id", "status", "message", "value"});
  job.finished = [](const batch::Item&, const fs::path& folder) -> std::optional<batch::Row> {
    if (!fs::exists(folder / "b.txt")) return std::nullopt;
    return batch::Row{{"value", read_file(folder / "b.txt")}};
  };
  job.prepare = [](const batch::Item& item) -> batch::Job::Work {
    return [item](const fs::path& staging) {
      std::ofstream(staging / "a.txt") << "a of " << item.id;
      if (item.id.rfind("bad", 0) == 0) throw sagitta::Error("cannot read " + item.input.string() + ": damaged");
      std::ofstream(staging / "b.txt") << item.id.size();
      return batch::Row{{"value", std::to_string(item.id.size())}};
    };
  };
  if (log) job.log = [log](const std::string& l) { log->push_back(l); };
  return job;
}

TEST(BatchItems, CsvManifestRowsHeaderQuotesAndRelativePaths) {
  const fs::path dir = scratch_dir();
  std::ofstream(dir / "cohort.csv") << "id,input,labels\n# a comment\n\ncase1,ct1.nrrd\n"
                                    << "\"case 2\",\"/abs/dicom, folder\",seg/case2.nrrd\r\ncase3,sub/ct3,\n";
  const auto items = batch::read_csv_manifest(dir / "cohort.csv");
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].id, "case1");
  EXPECT_EQ(items[0].input, fs::absolute(dir) / "ct1.nrrd");
  EXPECT_TRUE(items[0].reference.empty());
  EXPECT_EQ(items[1].id, "case 2");
  EXPECT_EQ(items[1].input, fs::path("/abs/dicom, folder"));
  EXPECT_EQ(items[1].reference, fs::absolute(dir) / "seg/case2.nrrd");
  EXPECT_EQ(items[2].input, fs::absolute(dir) / "sub/ct3");
  EXPECT_EQ(items[2].origin, "cohort.csv line 6");
  // Without a header too.
  std::ofstream(dir / "plain.csv") << "a,x.nrrd\nb,y.nrrd\n";
  EXPECT_EQ(batch::read_csv_manifest(dir / "plain.csv").size(), 2u);
}

TEST(BatchItems, DuplicateAndUnusableIdsAreRefusedNamingTheRows) {
  const fs::path dir = scratch_dir();
  std::ofstream(dir / "dup.csv") << "id,input\ncase1,a.nrrd\ncase2,b.nrrd\ncase1,c.nrrd\n";
  try {
    batch::read_csv_manifest(dir / "dup.csv");
    FAIL() << "duplicate ids accepted";
  } catch (const sagitta::UsageError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("duplicate id 'case1'"), std::string::npos) << m;
    EXPECT_NE(m.find("dup.csv line 2"), std::string::npos) << m;
    EXPECT_NE(m.find("dup.csv line 4"), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
  std::ofstream(dir / "bad.csv") << "../up,a.nrrd\n.hidden,b.nrrd\nonly-id\n";
  try {
    batch::read_csv_manifest(dir / "bad.csv");
    FAIL() << "bad rows accepted";
  } catch (const sagitta::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("line 3: expected id,input"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "ids.csv") << "../up,a.nrrd\n.hidden,b.nrrd\n";
  EXPECT_THROW(batch::read_csv_manifest(dir / "ids.csv"), sagitta::UsageError);
  EXPECT_THROW(batch::read_csv_manifest(dir / "missing.csv"), sagitta::UsageError);
}

TEST(BatchItems, PathListsAndFolders) {
  const fs::path dir = scratch_dir();
  std::ofstream(dir / "list.txt") << "# slides\n\na.svs\n  /abs/b.tiff  \r\n#c.svs\nsub/d.ndpi\na.svs\n";
  const auto slides = batch::read_path_list(dir / "list.txt");
  ASSERT_EQ(slides.size(), 3u);  // a.svs listed twice is one item
  EXPECT_EQ(slides[0].input, fs::absolute(dir) / "a.svs");
  EXPECT_EQ(slides[0].id, "a");
  EXPECT_EQ(slides[1].input, fs::path("/abs/b.tiff"));
  EXPECT_EQ(slides[2].input, fs::absolute(dir) / "sub/d.ndpi");
  EXPECT_THROW(batch::read_path_list(dir / "missing.txt"), sagitta::UsageError);

  for (const char* d : {"study_b", "study_a", ".hidden"}) fs::create_directories(dir / "cohort" / d);
  std::ofstream(dir / "cohort" / "notes.txt") << "not a study";
  const auto studies = batch::items_from_folder(dir / "cohort");
  ASSERT_EQ(studies.size(), 2u);
  EXPECT_EQ(studies[0].id, "study_a");
  EXPECT_EQ(studies[1].input, dir / "cohort" / "study_b");
}

TEST(BatchShards, ShardsPartitionTheList) {
  std::vector<int> list(11);
  for (int i = 0; i < 11; ++i) list[std::size_t(i)] = i;
  std::multiset<int> seen;
  for (int k = 0; k < 4; ++k)
    for (int v : batch::shard_of(list, batch::Shard{k, 4, ""})) seen.insert(v);
  EXPECT_EQ(seen.size(), 11u);
  EXPECT_EQ(std::set<int>(seen.begin(), seen.end()).size(), 11u);
  EXPECT_EQ(batch::shard_of(list, batch::Shard{3, 4, ""}), (std::vector<int>{3, 7}));
  const auto s = batch::parse_shard("2/8");
  EXPECT_EQ(std::make_pair(s.index, s.count), std::make_pair(1, 8));
  for (const char* bad : {"0/4", "5/4", "1", "a/b", "1/0", "2/3x"}) EXPECT_THROW(batch::parse_shard(bad), sagitta::UsageError) << bad;
  EXPECT_EQ(batch::csv_name({}), "batch.csv");
  EXPECT_EQ(batch::csv_name({1, 4, ""}), "batch-2-of-4.csv");
}

TEST(BatchShards, SlurmArrayEnvironment) {
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  EXPECT_FALSE(batch::shard_from_slurm());
  EXPECT_EQ(batch::choose_shard("").count, 1);
  ::setenv("SLURM_ARRAY_TASK_ID", "3", 1);
  ::setenv("SLURM_ARRAY_TASK_COUNT", "4", 1);
  ::setenv("SLURM_ARRAY_TASK_MIN", "1", 1);  // --array=1-4
  const auto s = batch::choose_shard("");
  EXPECT_EQ(std::make_pair(s.index, s.count), std::make_pair(2, 4));
  EXPECT_EQ(s.source, "Slurm job array");
  EXPECT_EQ(batch::choose_shard("1/2").source, "--shard");  // the option wins
  ::setenv("SLURM_ARRAY_TASK_ID", "5", 1);
  EXPECT_THROW(batch::shard_from_slurm(), sagitta::UsageError);
  ::unsetenv("SLURM_ARRAY_TASK_ID");
  ::unsetenv("SLURM_ARRAY_TASK_COUNT");
  ::unsetenv("SLURM_ARRAY_TASK_MIN");
}

TEST(BatchRun, BadItemIsOneLineOthersCompleteAndRerunSkipsFinished) {
  const fs::path out = scratch_dir() / "out";
  std::vector<std::string> log;
  const auto list = items({"one", "bad_two", "three"});
  auto r = batch::run(list, job_in(out, &log));
  EXPECT_EQ(r.done, 2);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(r.exit_code(), sagitta::kExitData);
  EXPECT_TRUE(fs::exists(out / "one" / "b.txt"));
  EXPECT_TRUE(fs::exists(out / "three" / "b.txt"));
  EXPECT_FALSE(fs::exists(out / "bad_two")) << "a failed item leaves nothing";
  EXPECT_TRUE(hidden_entries(out).empty());
  EXPECT_EQ(r.rows[1].at("message"), "study bad_two: cannot read inputs/x_bad_two: damaged");
  const auto csv = lines(read_file(out / "batch.csv"));
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(csv[0], "id,status,message,value");
  EXPECT_EQ(csv[1], "one,done,,3");
  EXPECT_EQ(csv[2], "bad_two,failed,study bad_two: cannot read inputs/x_bad_two: damaged,");
  EXPECT_EQ(csv[3], "three,done,,5");
  EXPECT_NE(log[1].find("[2/3] bad_two: FAILED"), std::string::npos) << log[1];

  // The rerun: finished items skipped (not rewritten), the bad one tried again.
  const auto before = fs::last_write_time(out / "one" / "b.txt");
  log.clear();
  r = batch::run(list, job_in(out, &log));
  EXPECT_EQ(r.skipped, 2);
  EXPECT_EQ(r.failed, 1);
  EXPECT_EQ(fs::last_write_time(out / "one" / "b.txt"), before);
  EXPECT_EQ(log[0], "[1/3] one: skipped (already complete)");
  EXPECT_EQ(lines(read_file(out / "batch.csv"))[1], "one,skipped,already complete,3");
  EXPECT_EQ(r.summary(), "0 done, 2 skipped (already complete), 1 failed; report " + (out / "batch.csv").string());

  // --force recomputes; an unfinished folder (no b.txt) is replaced whole.
  fs::remove(out / "three" / "b.txt");
  std::ofstream(out / "three" / "stale.txt") << "from an older run";
  auto job = job_in(out);
  r = batch::run(items({"one", "three"}), job);
  EXPECT_EQ(r.done, 1);
  EXPECT_FALSE(fs::exists(out / "three" / "stale.txt"));
  job.force = true;
  EXPECT_EQ(batch::run(items({"one", "three"}), job).done, 2);
}

TEST(BatchRun, LeftoversOfAKilledRunAreRemovedForTheShardsItemsOnly) {
  const fs::path out = scratch_dir() / "out";
  fs::create_directories(out / ".sagitta-partial-999999-one");
  std::ofstream(out / ".sagitta-partial-999999-one" / "a.txt") << "half";
  fs::create_directories(out / ".sagitta-old-999999-one");
  fs::create_directories(out / ".sagitta-partial-999999-one-more");  // another item's ("one-more")
  fs::create_directories(out / ".sagitta-partial-999999-two");       // item of the other shard
  auto job = job_in(out);
  job.shard = {0, 2, "--shard"};
  const auto r = batch::run(items({"one", "two"}), job);
  EXPECT_EQ(r.done, 1);
  EXPECT_FALSE(fs::exists(out / ".sagitta-partial-999999-one"));
  EXPECT_FALSE(fs::exists(out / ".sagitta-old-999999-one"));
  EXPECT_TRUE(fs::exists(out / ".sagitta-partial-999999-one-more"));
  EXPECT_TRUE(fs::exists(out / ".sagitta-partial-999999-two"));
  EXPECT_TRUE(fs::exists(out / "batch-1-of-2.csv"));
  EXPECT_FALSE(fs::exists(out / "two"));
}

TEST(BatchRun, CancelStopsTheBatchLeavingNothingPartial) {
  const fs::path out = scratch_dir() / "out";
  auto job = job_in(out);
  job.prepare = [](const batch::Item& item) -> batch::Job::Work {
    return [item](const fs::path& staging) -> batch::Row {
      std::ofstream(staging / "a.txt") << "a";
      if (item.id == "two") throw sagitta::Cancelled();
      std::ofstream(staging / "b.txt") << "b";
      return {};
    };
  };
  EXPECT_THROW(batch::run(items({"one", "two", "three"}), job), sagitta::Cancelled);
  EXPECT_TRUE(fs::exists(out / "one" / "b.txt"));
  EXPECT_FALSE(fs::exists(out / "two"));
  EXPECT_FALSE(fs::exists(out / "three"));
  EXPECT_TRUE(hidden_entries(out).empty());
  const auto csv = lines(read_file(out / "batch.csv"));
  ASSERT_EQ(csv.size(), 4u);
  EXPECT_EQ(csv[2], "two,pending,,");
}

TEST(BatchRun, ReadFailuresFailTheItemAndTheNextItemIsReadWhileOneWorks) {
  const fs::path out = scratch_dir() / "out";
  auto job = job_in(out);
  std::atomic<int> prepared{0};
  std::atomic<bool> overlapped{false};
  job.prepare = [&](const batch::Item& item) -> batch::Job::Work {
    ++prepared;
    if (item.id == "missing") throw sagitta::Error("input " + item.input.string() + " does not exist");
    return [&, item](const fs::path& staging) -> batch::Row {
      // While this item works, the next one is being read.
      for (int i = 0; i < 400 && prepared.load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (item.id == "one" && prepared.load() >= 2) overlapped = true;
      std::ofstream(staging / "b.txt") << "b";
      return {};
    };
  };
  const auto r = batch::run(items({"one", "missing", "three"}), job);
  EXPECT_TRUE(overlapped);
  EXPECT_EQ(r.done, 2);
  EXPECT_EQ(r.rows[1].at("status"), "failed");
  EXPECT_EQ(r.rows[1].at("message"), "study missing: input inputs/x_missing does not exist");
}

}  // namespace

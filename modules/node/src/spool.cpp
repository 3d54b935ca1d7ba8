// The listener's folders: incoming studies, the job queue, finished jobs.
#include "sagitta/node/spool.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "sagitta/core/error.h"

namespace sagitta::node {
namespace fs = std::filesystem;

void sync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw sagitta::Error(fmt::format("{}: cannot open to sync ({})", path.string(), std::strerror(errno)));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw sagitta::Error(fmt::format("{}: cannot sync ({})", path.string(), std::strerror(errno)));
}

void write_marker(const fs::path& path, const std::string& text) {
  const fs::path temp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw sagitta::Error(fmt::format("{}: cannot write ({})", temp.string(), std::strerror(errno)));
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!ok) throw sagitta::Error(fmt::format("{}: cannot write ({})", temp.string(), std::strerror(errno)));
  fs::rename(temp, path);
  sync_path(path.parent_path());
}

Spool::Spool(fs::path root) : root_(std::move(root)) {
  for (const char* sub : {"incoming", "queue", "done", "failed"}) fs::create_directories(root_ / sub);
  // What an interrupted run left: the newest instance of each incoming study starts its quiet
  // period again (file times survive the restart); half-written markers are dropped.
  for (const auto& study : fs::directory_iterator(root_ / "incoming")) {
    if (!study.is_directory() || !dicom::is_valid_uid(study.path().filename()) || !fs::is_directory(study.path() / "series"))
      continue;
    fs::file_time_type newest{};
    for (const auto& e : fs::recursive_directory_iterator(study.path()))
      if (e.is_regular_file()) newest = std::max(newest, e.last_write_time());
    const auto age = fs::file_time_type::clock::now() - newest;
    last_instance_[study.path().filename()] =
        Clock::now() - std::chrono::duration_cast<Clock::duration>(std::max(age, decltype(age)::zero()));
  }
}

void Spool::add(const dicom::ReceivedInstance& r) {
  sync_path(r.file);
  std::lock_guard lock(mutex_);
  const fs::path series = root_ / "incoming" / r.study_uid / "series" / r.series_uid;
  const bool new_folder = !fs::exists(series);
  fs::create_directories(series);
  fs::rename(r.file, series / (r.sop_instance_uid + ".dcm"));  // a resent instance replaces its copy
  sync_path(series);
  if (new_folder) {
    sync_path(series.parent_path());
    sync_path(series.parent_path().parent_path());
    sync_path(root_ / "incoming");
  }
  last_instance_[r.study_uid] = Clock::now();
}

std::vector<Spool::CompletedStudy> Spool::complete_quiet_studies(std::chrono::duration<double> quiet) {
  std::vector<CompletedStudy> done;
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  for (auto it = last_instance_.begin(); it != last_instance_.end();) {
    if (now - it->second < quiet) {
      ++it;
      continue;
    }
    CompletedStudy c;
    c.study_uid = it->first;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    c.job = fmt::format("{}-{}", ms, c.study_uid);
    const fs::path from = root_ / "incoming" / c.study_uid;
    for (const auto& s : fs::directory_iterator(from / "series")) {
      ++c.series;
      for (const auto& f : fs::directory_iterator(s.path())) c.instances += f.is_regular_file();
    }
    fs::rename(from, job_folder(c.job));
    sync_path(root_ / "queue");
    sync_path(root_ / "incoming");
    done.push_back(c);
    it = last_instance_.erase(it);
  }
  return done;
}

std::vector<std::string> Spool::queued_jobs() const {
  std::vector<std::string> jobs;
  for (const auto& e : fs::directory_iterator(root_ / "queue"))
    if (e.is_directory() && e.path().filename().string()[0] != '.') jobs.push_back(e.path().filename());
  // Millisecond prefixes of equal length sort by time.
  std::sort(jobs.begin(), jobs.end());
  return jobs;
}

void Spool::finish(const std::string& job, bool failed, bool keep_inputs) {
  const fs::path to = root_ / (failed ? "failed" : "done") / job;
  fs::remove_all(to);
  fs::rename(job_folder(job), to);
  sync_path(to.parent_path());
  sync_path(root_ / "queue");
  if (!failed && !keep_inputs) fs::remove_all(to / "series");
}

}  // namespace sagitta::node

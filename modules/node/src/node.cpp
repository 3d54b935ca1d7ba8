// The node's threads: the storage SCP, the quiet-period clock, and N workers that take jobs from
// the queue, segment the chosen series in child processes and send the results.
#include "sagitta/node/node.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "sagitta/core/error.h"
#include "sagitta/dicom/store_scp.h"
#include "sagitta/node/destination.h"
#include "sagitta/node/spool.h"

namespace sagitta::node {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string last_line(const std::string& text) {
  std::size_t end = text.find_last_not_of("\n ");
  if (end == std::string::npos) return "";
  const std::size_t start = text.rfind('\n', end);
  return text.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
}

struct ChildResult {
  bool stopped = false;  // we ended it because the node is stopping
  int exit_code = -1;    // -1: killed by a signal
  int signal = 0;
};

// Runs argv with stdout and stderr into `log_file`. The child dies with the node (a SIGKILLed
// node leaves no orphan that could still write results), and gets SIGTERM when `stop()` says so.
ChildResult run_child(const std::vector<std::string>& args, const fs::path& log_file, const std::function<bool()>& stop) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const int log_fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) throw sagitta::Error(fmt::format("{}: cannot write", log_file.string()));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    throw sagitta::Error("cannot start a process (fork failed)");
  }
  if (pid == 0) {  // only async-signal-safe calls from here to exec
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ChildResult r;
  int status = 0;
  for (;;) {
    const pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) throw sagitta::Error("lost a segmentation process");
    if (!r.stopped && stop()) {
      r.stopped = true;
      ::kill(pid, SIGTERM);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  return r;
}

enum class Outcome { Done, Failed, Retry, Stopped };

class Node {
public:
  Node(const NodeConfig& c, const NodeOptions& o)
      : config_(c), options_(o), spool_(c.spool), destination_(make_destination(c.destination)) {}

  void run() {
    dicom::StoreScpOptions so;
    so.ae_title = config_.ae_title;
    so.port = config_.port;
    so.folder = spool_.root();
    dicom::StoreScp scp(so);
    scp.open();
    for (const auto& job : spool_.queued_jobs()) log(fmt::format("job {}: resumed from the queue", job));
    log(fmt::format("listening as {} on port {}; spool {}; {} rule{}; results to {}; quiet period {} s; {} stud{} at once",
                    config_.ae_title, config_.port, spool_.root().string(), config_.rules.size(),
                    config_.rules.size() == 1 ? "" : "s", destination_->name(), config_.quiet_seconds, config_.concurrency,
                    config_.concurrency == 1 ? "y" : "ies"));

    std::thread receiver([&] {
      scp.serve([this] { return stopping(); }, [this](const dicom::ReceivedInstance& r) {
        spool_.add(r);
        log(fmt::format("received {} (series {}, study {}) from {}", r.sop_instance_uid, r.series_uid, r.study_uid, r.calling_ae));
      });
    });
    std::vector<std::thread> workers;
    for (int i = 0; i < config_.concurrency; ++i) workers.emplace_back([this] { work(); });

    while (!stopping()) {
      try {
        for (const auto& c : spool_.complete_quiet_studies(std::chrono::duration<double>(config_.quiet_seconds))) {
          std::string who;
          if (options_.log_phi) who = patient_of(spool_.job_folder(c.job));
          log(fmt::format("study {} complete ({} instance{} in {} series{}) -> job {}", c.study_uid, c.instances,
                          c.instances == 1 ? "" : "s", c.series, who, c.job));
          wake_.notify_all();
        }
      } catch (const std::exception& e) {  // e.g. a full disk: said, and tried again on the next tick
        log(fmt::format("cannot queue a complete study: {}", e.what()));
      }
      std::unique_lock lock(mutex_);
      wake_.wait_for(lock, std::chrono::milliseconds(200));
    }
    log("stopping: no new associations; running segmentations are ended and resume on the next start");
    wake_.notify_all();
    receiver.join();
    for (auto& w : workers) w.join();
    log("stopped");
  }

private:
  const NodeConfig& config_;
  const NodeOptions& options_;
  Spool spool_;
  std::unique_ptr<ResultDestination> destination_;
  std::mutex mutex_;  // claimed_, explained_, retry_
  std::condition_variable wake_;
  std::set<std::string> claimed_, explained_;
  struct Backoff {
    Clock::time_point next;
    double seconds = 0;
  };
  std::map<std::string, Backoff> retry_;
  std::mutex log_mutex_;

  bool stopping() const { return options_.stop && options_.stop(); }

  void log(const std::string& line) {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::lock_guard lock(log_mutex_);
    options_.log(fmt::format("{} {}", stamp, line));
  }

  // ", patient <name> <id>" from the job's first series (only with --log-phi).
  std::string patient_of(const fs::path& job) {
    try {
      for (const auto& s : fs::directory_iterator(job / "series")) {
        const SeriesFacts f = read_series_facts(s.path());
        return fmt::format(", patient '{}' id '{}'", f.patient_name, f.patient_id);
      }
    } catch (const std::exception&) {
    }
    return "";
  }

  // The next job a worker may take: queued, not taken, not waiting for a retry.
  std::string take() {
    std::unique_lock lock(mutex_);
    for (;;) {
      if (stopping()) return "";
      std::vector<std::string> jobs;
      try {
        jobs = spool_.queued_jobs();
      } catch (const std::exception&) {
      }
      const auto now = Clock::now();
      for (const auto& j : jobs) {
        if (claimed_.count(j)) continue;
        const auto r = retry_.find(j);
        if (r != retry_.end() && r->second.next > now) continue;
        claimed_.insert(j);
        return j;
      }
      wake_.wait_for(lock, std::chrono::milliseconds(500));
    }
  }

  void work() {
    for (std::string job = take(); !job.empty(); job = take()) {
      Outcome o = Outcome::Retry;
      try {
        o = process(job);
      } catch (const std::exception& e) {
        log(fmt::format("job {}: {}", job, e.what()));
      }
      std::lock_guard lock(mutex_);
      claimed_.erase(job);
      if (o == Outcome::Retry) {
        Backoff& b = retry_[job];
        b.seconds = b.seconds == 0 ? config_.retry_initial_seconds : std::min(b.seconds * 2, config_.retry_max_seconds);
        b.next = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(b.seconds));
        log(fmt::format("job {}: will retry in {} s", job, b.seconds));
      } else {
        retry_.erase(job);
      }
    }
  }

  struct Work {
    std::string name;  // <rule>--<SeriesUID>
    const Rule* rule;
    fs::path series;
  };

  // What the rules choose for the job's series (logged once per job run).
  std::vector<Work> choose(const std::string& job) {
    bool quiet = false;  // said once per job and run, not on every retry
    {
      std::lock_guard lock(mutex_);
      quiet = !explained_.insert(job).second;
    }
    auto say = [&](const std::string& line) {
      if (!quiet) log(line);
    };
    std::vector<Work> chosen;
    const fs::path folder = spool_.job_folder(job);
    for (const auto& s : fs::directory_iterator(folder / "series")) {
      SeriesFacts f;
      try {
        f = read_series_facts(s.path());
      } catch (const std::exception&) {
        say(fmt::format("job {}: series {} skipped: no readable DICOM file", job, s.path().filename().string()));
        continue;
      }
      const std::string facts = fmt::format("{}, {}, {}, {}", f.modality.empty() ? "no modality" : f.modality,
                                            f.body_part.empty() ? "no body part" : f.body_part,
                                            f.orientation.empty() ? "no orientation" : f.orientation,
                                            f.slice_thickness_mm ? fmt::format("{} mm", *f.slice_thickness_mm) : "no thickness");
      std::string reasons;
      bool any = false;
      for (const auto& r : config_.rules) {
        const std::string why = mismatch(r, f);
        if (why.empty()) {
          any = true;
          chosen.push_back({r.name + "--" + s.path().filename().string(), &r, s.path()});
          say(fmt::format("job {}: series {} ({}) matches rule {} (model {})", job, f.series_uid, facts, r.name,
                          r.model.filename().string() == "model.json" ? r.model.parent_path().filename().string()
                                                                      : r.model.filename().string()));
        } else {
          reasons += fmt::format("{}rule {}: {}", reasons.empty() ? "" : "; ", r.name, why);
        }
      }
      if (!any) say(fmt::format("job {}: series {} ({}) skipped: {}", job, s.path().filename().string(), facts, reasons));
    }
    return chosen;
  }

  // Runs `sagitta segment` for one chosen series; false when the node is stopping.
  bool segment(const std::string& job, const Work& w) {
    const fs::path folder = spool_.job_folder(job);
    const fs::path result = folder / "results" / w.name, failed = folder / "results" / (w.name + ".failed");
    if (fs::exists(result) || fs::exists(failed)) return true;
    const fs::path work = folder / "work" / w.name;
    fs::remove_all(work);  // an interrupted run's
    fs::create_directories(work.parent_path());
    fs::create_directories(folder / "results");
    std::vector<std::string> args{options_.sagitta_program, "segment", w.series.string(), "--model", w.rule->model.string(),
                                  "-o", work.string(), "--threads", std::to_string(config_.threads), "--no-progress"};
    if (w.rule->seg || w.rule->sr) args.insert(args.end(), {"--dicom-seg", "--seg-type", w.rule->seg_type});
    if (w.rule->sr) args.push_back("--dicom-sr");
    if (w.rule->rtstruct) args.push_back("--rtstruct");
    log(fmt::format("job {}: segmenting {} with rule {}", job, w.series.filename().string(), w.rule->name));
    const auto t0 = Clock::now();
    const fs::path log_file = folder / "work" / (w.name + ".log");
    const ChildResult r = run_child(args, log_file, [this] { return stopping(); });
    if (r.stopped) {
      fs::remove_all(work);
      return false;
    }
    if (r.exit_code == 0 && fs::exists(work / "report.json")) {
      fs::rename(work, result);
      sync_path(folder / "results");
      log(fmt::format("job {}: segmented {} in {:.1f} s", job, w.series.filename().string(),
                      std::chrono::duration<double>(Clock::now() - t0).count()));
    } else {
      const std::string why = r.signal ? fmt::format("killed by signal {}", r.signal)
                                       : fmt::format("exit code {}: {}", r.exit_code, last_line(read_text(log_file)));
      write_marker(failed, why + "\n");
      fs::remove_all(work);
      log(fmt::format("job {}: segmentation of {} with rule {} failed ({}); not retried", job, w.series.filename().string(),
                      w.rule->name, why));
    }
    return true;
  }

  Outcome process(const std::string& job) {
    const fs::path folder = spool_.job_folder(job);
    const std::vector<Work> chosen = choose(job);
    bool failed = false;
    std::vector<fs::path> files;
    std::vector<std::string> uids;
    for (const auto& w : chosen) {
      if (!segment(job, w)) return Outcome::Stopped;
      const fs::path result = folder / "results" / w.name;
      if (!fs::exists(result)) {
        failed = true;
        continue;
      }
      const json report = json::parse(read_text(result / "report.json"));
      for (const char* kind : {"seg", "sr", "rtstruct"}) {
        const json& d = report.value("dicom", json::object());
        if (!d.contains(kind)) continue;
        files.push_back(result / d[kind]["file"].get<std::string>());
        uids.push_back(d[kind]["sop_instance_uid"].get<std::string>());
      }
    }
    // Only what the destination has not confirmed yet.
    fs::create_directories(folder / "sent");
    std::vector<fs::path> to_send;
    std::vector<std::string> to_send_uids;
    for (std::size_t i = 0; i < files.size(); ++i)
      if (!fs::exists(folder / "sent" / uids[i])) {
        to_send.push_back(files[i]);
        to_send_uids.push_back(uids[i]);
      }
    if (!to_send.empty()) {
      try {
        destination_->send(to_send, [&](std::size_t i) {
          write_marker(folder / "sent" / to_send_uids[i], destination_->name() + "\n");
          log(fmt::format("job {}: {} confirmed by {}", job, to_send_uids[i], destination_->name()));
          return !stopping();
        });
      } catch (const std::exception& e) {
        if (stopping()) return Outcome::Stopped;
        log(fmt::format("job {}: sending to {} failed: {}", job, destination_->name(), e.what()));
        return Outcome::Retry;
      }
    }
    write_summary(job, chosen, files, uids);
    spool_.finish(job, failed, config_.keep_inputs);
    log(fmt::format("job {}: {} ({} result{} sent, {} before)", job, failed ? "failed" : "done", to_send.size(),
                    to_send.size() == 1 ? "" : "s", files.size() - to_send.size()));
    return failed ? Outcome::Failed : Outcome::Done;
  }

  void write_summary(const std::string& job, const std::vector<Work>& chosen, const std::vector<fs::path>& files,
                     const std::vector<std::string>& uids) {
    json j = {{"job", job}, {"destination", destination_->name()}, {"segmentations", json::array()}, {"sent", json::array()}};
    for (const auto& w : chosen) j["segmentations"].push_back({{"rule", w.rule->name}, {"series", w.series.filename().string()}});
    for (std::size_t i = 0; i < files.size(); ++i)
      j["sent"].push_back({{"file", fs::relative(files[i], spool_.job_folder(job)).string()}, {"sop_instance_uid", uids[i]}});
    write_marker(spool_.job_folder(job) / "job.json", j.dump(2) + "\n");
  }
};

}  // namespace

void run_node(const NodeConfig& config, const NodeOptions& options) {
  Node node(config, options);
  node.run();
}

}  // namespace sagitta::node

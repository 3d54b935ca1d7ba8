#pragma once
// A one-node Slurm cluster on this machine for the `cluster` tests (Debian's slurm-wlm: slurmctld
// and slurmd on 127.0.0.1, auth/none, no munge or systemd; see docs/DESIGN facts). Needs root
// (slurmd starts jobs as their user); the daemons are stopped by the process ids started here.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "support/test_paths.h"

namespace sagitta::testing {

class OneNodeSlurm {
public:
  explicit OneNodeSlurm(const std::filesystem::path& dir) : dir_(dir) {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    host_ = host;
    // slurmd's spool holds Unix sockets, whose paths must stay under 108 bytes: a short folder in /tmp.
    char spool_template[] = "/tmp/sgslurm-XXXXXX";
    if (::mkdtemp(spool_template)) spool_ = spool_template;
    std::filesystem::create_directories(dir / "state");
    // Ports away from the defaults, so a real Slurm on the machine is not disturbed.
    const int port = 17000 + int(::getpid() % 1000) * 2;
    const long cpus = std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN));
    // The node's memory, so jobs asking for some (the sbatch script's --mem) can be placed.
    const long memory_mib = long(double(::sysconf(_SC_PHYS_PAGES)) * double(::sysconf(_SC_PAGE_SIZE)) / 1048576.0 * 0.9);
    std::ofstream(conf()) << "ClusterName=sagittatest\n"
                          << "SlurmctldHost=" << host_ << "(127.0.0.1)\n"
                          << "SlurmctldPort=" << port << "\nSlurmdPort=" << port + 1 << "\n"
                          << "SlurmUser=root\nSlurmdUser=root\n"
                          << "AuthType=auth/none\nCredType=cred/none\n"
                          << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
                          << "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
                          << "SchedulerType=sched/builtin\nSelectType=select/cons_tres\nSelectTypeParameters=CR_Core\n"
                          << "MpiDefault=none\nReturnToService=2\nMinJobAge=4\n"
                          << "StateSaveLocation=" << (dir / "state").string() << "\n"
                          << "SlurmdSpoolDir=" << spool_.string() << "\n"
                          << "SlurmctldPidFile=" << (dir / "slurmctld.pid").string() << "\n"
                          << "SlurmdPidFile=" << (dir / "slurmd.pid").string() << "\n"
                          << "SlurmctldLogFile=" << (dir / "slurmctld.log").string() << "\n"
                          << "SlurmdLogFile=" << (dir / "slurmd.log").string() << "\n"
                          << "NodeName=" << host_ << " NodeAddr=127.0.0.1 CPUs=" << cpus << " RealMemory=" << memory_mib << " State=UNKNOWN\n"
                          << "PartitionName=test Nodes=" << host_ << " Default=YES MaxTime=INFINITE State=UP\n";
    ctld_ = start("slurmctld -D -i -f " + shell_quote(conf()));
    slurmd_ = start("slurmd -D -N " + host_ + " -f " + shell_quote(conf()));
  }
  ~OneNodeSlurm() {
    // Stop the daemons this test started, by their process ids.
    for (int pid : {slurmd_, ctld_})
      if (pid > 0) ::kill(pid, SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int pid : {slurmd_, ctld_})
      if (pid > 0) ::kill(pid, SIGKILL);
    std::error_code ec;
    if (!spool_.empty()) std::filesystem::remove_all(spool_, ec);
  }
  std::filesystem::path conf() const { return dir_ / "slurm.conf"; }
  std::string env() const { return "SLURM_CONF=" + shell_quote(conf()) + " "; }
  bool wait_idle() const {
    for (int i = 0; i < 300; ++i) {
      const auto r = run_command(env() + "sinfo -h -o %t");
      if (r.exit_code == 0 && r.out.find("idle") != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string logs() const {
    std::stringstream ss;
    for (const char* f : {"slurmctld.log", "slurmd.log"}) ss << std::ifstream(dir_ / f).rdbuf();
    return ss.str();
  }

private:
  static int start(const std::string& command) {
    const auto r = run_command(command + " >/dev/null 2>&1 & echo $!");
    return r.out.empty() ? -1 : std::stoi(r.out);
  }
  std::filesystem::path dir_, spool_;
  std::string host_;
  int ctld_ = -1, slurmd_ = -1;
};

}  // namespace sagitta::testing

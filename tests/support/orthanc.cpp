// Starting and stopping a private Orthanc for the network suites.
#include "support/orthanc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

extern char** environ;

namespace sagitta::testing {
namespace fs = std::filesystem;

int free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

bool port_open(int port) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

bool OrthancProcess::start(const fs::path& dir, nlohmann::json config) {
  stop();
  fs::create_directories(dir / "storage");
  fs::create_directories(dir / "logs");
  config["StorageDirectory"] = (dir / "storage").string();
  config["IndexDirectory"] = (dir / "storage").string();
  std::ofstream(dir / "orthanc.json") << config.dump(2);
  const std::string config_path = (dir / "orthanc.json").string();
  const std::string log_arg = "--logdir=" + (dir / "logs").string();
  std::vector<char*> argv{const_cast<char*>(kOrthancBinary), const_cast<char*>(config_path.c_str()),
                          const_cast<char*>(log_arg.c_str()), nullptr};
  if (::posix_spawn(&pid_, kOrthancBinary, nullptr, nullptr, argv.data(), environ) != 0) {
    pid_ = 0;
    return false;
  }
  const int dicom = config.value("DicomPort", 4242);
  const int http = config.value("HttpServerEnabled", true) ? config.value("HttpPort", 8042) : 0;
  for (int i = 0; i < 150; ++i) {  // usually up within a second
    if (port_open(dicom) && (http == 0 || port_open(http))) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {  // exited: bad configuration or plugin
      pid_ = 0;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

void OrthancProcess::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  int status = 0;
  for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (::waitpid(pid_, &status, WNOHANG) == 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  }
  pid_ = 0;
}

}  // namespace sagitta::testing

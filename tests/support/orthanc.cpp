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
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "support/test_paths.h"

extern char** environ;

namespace sagitta::testing {
namespace fs = std::filesystem;

int free_port() {
  // The kernel may hand the same free port to two calls in a row (the socket is closed at once):
  // a port given out before in this process is never given again, so a test's node, Orthanc's
  // DICOM port and its HTTP port never collide.
  static std::mutex mutex;
  static std::set<int> given;
  const std::lock_guard<std::mutex> lock(mutex);
  for (;;) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    const int port = ntohs(a.sin_port);
    if (given.insert(port).second) return port;
  }
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

bool OrthancServer::installed() { return ::access(kBinary, X_OK) == 0; }

bool OrthancServer::start(const fs::path& dir, const nlohmann::json& overrides) {
  if (!installed()) return false;
  dir_ = dir;
  fs::remove_all(dir_);
  dicom_port_ = free_port();
  nlohmann::json config = {{"Name", "SagittaTest"},
                           {"DicomAet", "ORTHANC"},
                           {"DicomPort", dicom_port_},
                           {"HttpServerEnabled", false},
                           {"HttpPort", free_port()},
                           {"RemoteAccessAllowed", false},
                           {"AuthenticationEnabled", false},
                           // Only known AE titles may talk to it: a stranger is refused.
                           {"DicomCheckCalledAETitle", true},
                           {"DicomAlwaysAllowEcho", false},
                           {"DicomAlwaysAllowStore", true},
                           {"DicomAlwaysAllowFind", true},
                           {"DicomAlwaysAllowGet", true},
                           {"DicomAlwaysAllowMove", true},
                           {"DicomCheckModalityHost", false},
                           {"Plugins", nlohmann::json::array()},
                           {"ConcurrentJobs", 1},
                           {"SaveJobs", false}};
  config.merge_patch(overrides);
  http_port_ = config["HttpPort"].get<int>();
  if (!process_.start(dir_, config)) return false;
  // Ready when it answers a C-ECHO (usually within a second).
  for (int i = 0; i < 100; ++i) {
    const std::string echo = fmt::format("{} pacs echo --port {} --aec ORTHANC --aet SAGITTA --timeout 2",
                                         shell_quote(sagitta_executable()), dicom_port_);
    if (run_command(echo).exit_code == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

std::string OrthancServer::rest(const std::string& method, const std::string& path, const std::string& body) const {
  std::string data;
  if (method != "GET") {
    const fs::path body_file = dir_ / fmt::format("body-{}.txt", ::getpid());
    std::ofstream(body_file) << body;
    data = "--data-binary @" + shell_quote(body_file);
  }
  const auto r = run_command(fmt::format("curl -sS -f -X {} {} http://127.0.0.1:{}{}", method, data, http_port_, path));
  return r.exit_code == 0 ? r.out : "";
}

bool OrthancServer::download(const std::string& path, const fs::path& file) const {
  return run_command(fmt::format("curl -sS -f -o {} http://127.0.0.1:{}{}", shell_quote(file), http_port_, path)).exit_code == 0;
}

nlohmann::json OrthancServer::rest_json(const std::string& method, const std::string& path, const std::string& body) const {
  try {
    return nlohmann::json::parse(rest(method, path, body));
  } catch (...) {
    return nullptr;
  }
}

}  // namespace sagitta::testing

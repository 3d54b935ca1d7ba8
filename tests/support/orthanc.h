#pragma once
// A private Orthanc (Debian package `orthanc`; DICOMweb from `orthanc-dicomweb`) for the network
// suites: started on 127.0.0.1 with a temporary configuration, storage and log folder, stopped by
// its process id. Every test process starts its own (ctest runs test cases in parallel).
#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>

namespace sagitta::testing {

inline constexpr const char* kOrthancBinary = "/usr/sbin/Orthanc";
inline constexpr const char* kOrthancDicomWebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so";

// A TCP port nobody listens on right now (the kernel's choice for an ephemeral bind).
int free_port();
// True once something accepts TCP connections on 127.0.0.1:`port`.
bool port_open(int port);

class OrthancProcess {
public:
  OrthancProcess() = default;
  OrthancProcess(const OrthancProcess&) = delete;
  OrthancProcess& operator=(const OrthancProcess&) = delete;
  ~OrthancProcess() { stop(); }

  // Writes `config` (StorageDirectory, IndexDirectory filled in) to `dir`/orthanc.json, starts
  // Orthanc and waits until its DICOM port (and HTTP port, when enabled) accept connections.
  // False when it did not come up (see `dir`/logs).
  bool start(const std::filesystem::path& dir, nlohmann::json config);
  void stop();  // SIGTERM, then SIGKILL after 10 s
  bool running() const { return pid_ > 0; }

private:
  pid_t pid_ = 0;
};

}  // namespace sagitta::testing

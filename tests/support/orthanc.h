#pragma once
// A private Orthanc (Debian package `orthanc`; DICOMweb from `orthanc-dicomweb`) for the network
// suites: started on 127.0.0.1 with a temporary configuration, storage and log folder, stopped by
// its process id. Every test process starts its own (ctest runs test cases in parallel).
//   OrthancProcess: the process itself, from a whole configuration (DICOMweb suites write theirs).
//   OrthancServer:  the DIMSE suites' Orthanc: a locked-down default configuration plus overrides,
//                   ready when it answers our C-ECHO, with REST calls through curl.
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

class OrthancServer {
public:
  static constexpr const char* kBinary = kOrthancBinary;
  static bool installed();

  // Starts Orthanc as AE title ORTHANC on a free DICOM port, accepting only known AE titles, with
  // `overrides` merged into the configuration (JSON merge patch: DicomModalities, HTTP...).
  // Ready when it answers a C-ECHO from AE title SAGITTA, which `overrides` must list as a
  // modality. False when it did not start (see logs()).
  bool start(const std::filesystem::path& dir, const nlohmann::json& overrides);
  void stop() { process_.stop(); }

  int dicom_port() const { return dicom_port_; }
  std::filesystem::path logs() const { return dir_ / "logs"; }

  // With "HttpServerEnabled": true and "HttpPort" in the overrides: a REST call through curl;
  // returns the body ("" when curl fails).
  std::string rest(const std::string& method, const std::string& path, const std::string& body = "") const;
  nlohmann::json rest_json(const std::string& method, const std::string& path, const std::string& body = "") const;

  // GET `path` into `file`; false when curl fails.
  bool download(const std::string& path, const std::filesystem::path& file) const;
  int http_port() const { return http_port_; }

private:
  OrthancProcess process_;
  std::filesystem::path dir_;
  int dicom_port_ = 0, http_port_ = 0;
};

}  // namespace sagitta::testing

#pragma once
// A real Orthanc (Debian package `orthanc`) for the network suites: started on 127.0.0.1 with a
// temporary configuration, database and storage in its own folder, stopped by its process id.
#include <sys/types.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace sagitta::testing {

// A TCP port nobody listens on right now (the kernel's choice for an ephemeral bind).
int free_port();

class OrthancServer {
public:
  static constexpr const char* kBinary = "/usr/sbin/Orthanc";
  static bool installed();

  // Starts Orthanc as AE title ORTHANC on a free DICOM port, accepting only known AE titles, with
  // `overrides` merged into the configuration (JSON merge patch: DicomModalities, HTTP...).
  // Ready when it answers a C-ECHO from AE title SAGITTA, which `overrides` must list as a
  // modality. False when it did not start (see logs()).
  bool start(const std::filesystem::path& dir, const nlohmann::json& overrides);
  void stop();  // SIGTERM, then SIGKILL after 10 s
  ~OrthancServer() { stop(); }

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
  std::filesystem::path dir_;
  int dicom_port_ = 0, http_port_ = 0;
  pid_t pid_ = 0;
};

}  // namespace sagitta::testing

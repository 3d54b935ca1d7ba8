// Result destinations: C-STORE to a DICOM node, STOW-RS to a DICOMweb service.
#include "sagitta/node/destination.h"

#include <fmt/format.h>

#include "sagitta/core/error.h"
#include "sagitta/dicom/dicomweb.h"
#include "sagitta/dicom/pacs.h"

namespace sagitta::node {
namespace {

class DimseDestination : public ResultDestination {
public:
  explicit DimseDestination(dicom::PacsPeer peer) : peer_(std::move(peer)) {}
  std::string name() const override { return fmt::format("{}@{}:{}", peer_.called_ae, peer_.host, peer_.port); }
  void send(const std::vector<std::filesystem::path>& files, const std::function<bool(std::size_t)>& confirmed) override {
    // pacs_store reports after each C-STORE response with a success (or warning) status.
    dicom::pacs_store(peer_, files, [&](std::size_t done, std::size_t) { return confirmed(done - 1); });
  }

private:
  dicom::PacsPeer peer_;
};

class StowDestination : public ResultDestination {
public:
  explicit StowDestination(dicom::DicomWebServer server) : server_(std::move(server)) {}
  std::string name() const override { return dicom::without_credentials(server_.url); }
  void send(const std::vector<std::filesystem::path>& files, const std::function<bool(std::size_t)>& confirmed) override {
    // A STOW-RS response confirms its whole request: one object per request, so each is
    // confirmed (and journalled) on its own, as a C-STORE response confirms one instance.
    for (std::size_t i = 0; i < files.size(); ++i) {
      dicom::stow_store(server_, {files[i]});
      if (!confirmed(i)) return;
    }
  }

private:
  dicom::DicomWebServer server_;
};

}  // namespace

std::unique_ptr<ResultDestination> make_destination(const Destination& config) {
  const nlohmann::json& s = config.settings;
  if (config.type == "dimse") {
    dicom::PacsPeer p;
    try {
      p.called_ae = s.value("ae_title", p.called_ae);
      p.host = s.value("host", p.host);
      p.port = s.value("port", p.port);
      p.calling_ae = s.value("calling_ae_title", p.calling_ae);
      p.connect_timeout_s = s.value("connect_timeout_seconds", p.connect_timeout_s);
      p.acse_timeout_s = p.connect_timeout_s;
      p.dimse_timeout_s = s.value("dimse_timeout_seconds", p.dimse_timeout_s);
    } catch (const nlohmann::json::exception& e) {
      throw sagitta::Error(fmt::format("destination: a value has the wrong type ({})", e.what()));
    }
    if (p.port <= 0 || p.port > 65535) throw sagitta::Error(fmt::format("destination: port {} is not a TCP port", p.port));
    if (p.called_ae.empty() || p.called_ae.size() > 16 || p.calling_ae.empty() || p.calling_ae.size() > 16)
      throw sagitta::Error("destination: AE titles must have 1 to 16 characters");
    return std::make_unique<DimseDestination>(std::move(p));
  }
  if (config.type == "dicomweb") {
    dicom::DicomWebServer server;
    try {
      server.url = s.value("url", std::string());
      server.user = s.value("user", std::string());
      server.password = s.value("password", std::string());
      server.token = s.value("token", std::string());
      server.ca_file = s.value("ca_file", std::string());
      server.connect_timeout_s = s.value("connect_timeout_seconds", server.connect_timeout_s);
      server.timeout_s = s.value("timeout_seconds", server.timeout_s);
    } catch (const nlohmann::json::exception& e) {
      throw sagitta::Error(fmt::format("destination: a value has the wrong type ({})", e.what()));
    }
    if (server.url.rfind("http://", 0) != 0 && server.url.rfind("https://", 0) != 0)
      throw sagitta::Error("destination: a dicomweb destination needs \"url\": \"http(s)://host/dicom-web\"");
    if (server.connect_timeout_s < 1 || server.timeout_s < 1)
      throw sagitta::Error("destination: timeouts must be at least one second");
    // Credentials may stay out of the file: SAGITTA_DICOMWEB_USER / _PASSWORD / _TOKEN.
    return std::make_unique<StowDestination>(dicom::with_environment(std::move(server)));
  }
  throw sagitta::Error(fmt::format("destination: type '{}' is not known (use dimse or dicomweb)", config.type));
}

}  // namespace sagitta::node

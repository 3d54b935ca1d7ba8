// Result destinations: C-STORE to a DICOM node.
#include "sagitta/node/destination.h"

#include <fmt/format.h>

#include "sagitta/core/error.h"
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
  throw sagitta::Error(fmt::format("destination: type '{}' is not known (use dimse)", config.type));
}

}  // namespace sagitta::node

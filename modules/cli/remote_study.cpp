// The study of `segment --pacs/--dicomweb`: pulled, handed to the command as a folder, results
// stored back, the folder removed.
#include "remote_study.h"

#include <fmt/format.h>
#include <unistd.h>

#include "pacs_options.h"
#include "sagitta/core/error.h"
#include "sagitta/dicom/error.h"

namespace sagitta::cli {
namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;

std::vector<Parameter> remote_study_parameters() {
  Parameter pacs = parameter("pacs", ParamType::String, "pacs", "", "PACS",
                             "AE@host:port of a PACS: retrieve --study from it (C-GET), segment it, and store the "
                             "DICOM SEG back (C-STORE); the input folder argument is then not needed");
  Parameter dicomweb = parameter("dicomweb", ParamType::String, "dicomweb", "", "DICOMweb",
                                 "Base URL of a DICOMweb server (e.g. http://127.0.0.1:8042/dicom-web): retrieve --study "
                                 "from it (WADO-RS), segment it, and store the DICOM SEG (and SR, RTSTRUCT when asked) "
                                 "back (STOW-RS); the input folder argument is then not needed");
  Parameter study = parameter("study", ParamType::String, "study", "", "Study",
                              "StudyInstanceUID to retrieve with --pacs or --dicomweb");
  std::vector<Parameter> group{pacs, dicomweb, study};
  // Our AE title and timeouts; host, port and the PACS' AE title come from --pacs.
  for (const auto& p : pacs_peer_parameters())
    if (p.name == "pacs_aet" || p.name == "pacs_timeout" || p.name == "pacs_dimse_timeout") group.push_back(p);
  for (const auto& p : dicomweb_server_parameters()) group.push_back(p);
  for (auto& p : group) p.slicer = false;
  return group;
}

RemoteStudy::RemoteStudy(const Arguments& a, const fs::path& outputs, Progress& progress) {
  const bool pacs = !a.text("pacs").empty();
  dicomweb_ = !a.text("dicomweb").empty();
  if (!pacs && !dicomweb_) return;
  if (pacs && dicomweb_) throw UsageError("give --pacs or --dicomweb, not both");
  const char* option = dicomweb_ ? "--dicomweb" : "--pacs";
  study_ = a.text("study");
  if (study_.empty()) throw UsageError(fmt::format("{} needs --study <StudyInstanceUID>", option));
  if (!a.list("inputs").empty()) throw UsageError(fmt::format("give either input folders/files or {}, not both", option));
  if (dicomweb_) {
    server_ = dicomweb_server(a, a.text("dicomweb"));
  } else {
    peer_ = pacs_peer(a);
    parse_pacs_address(a.text("pacs"), peer_);
  }
  const fs::path folder = outputs / fmt::format(".sagitta-{}-study-{}", dicomweb_ ? "dicomweb" : "pacs", ::getpid());
  progress.stage(dicomweb_ ? "retrieving (WADO-RS)" : "retrieving from PACS", 0.0, 0.05);
  auto report = [&progress](std::size_t done, std::size_t total) {
    return total ? progress.update(static_cast<long long>(done), static_cast<long long>(total)) : !cancel_requested();
  };
  try {
    const dcm::QueryKeys keys{{"StudyInstanceUID", study_}};
    if (dicomweb_)
      dcm::wado_retrieve(server_, keys, folder, report);
    else
      dcm::pacs_get(peer_, dcm::QueryLevel::Study, keys, folder, report);
    if (cancel_requested()) throw Cancelled();
  } catch (const dcm::DicomError&) {
    std::error_code ec;
    fs::remove_all(folder, ec);
    if (cancel_requested()) throw Cancelled();
    throw;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(folder, ec);
    throw;
  }
  folder_ = folder;
}

RemoteStudy::~RemoteStudy() {
  std::error_code ec;
  if (!folder_.empty()) fs::remove_all(folder_, ec);
}

std::vector<std::string> RemoteStudy::inputs(const Arguments& a) const {
  return active() ? std::vector<std::string>{folder_.string()} : a.list("inputs");
}

nlohmann::json RemoteStudy::store(const fs::path& file) const {
  if (cancel_requested()) throw Cancelled();
  if (dicomweb_) {
    const auto stored = dcm::stow_store(server_, {file});
    return {{"stored_to", dcm::without_credentials(server_.url)}, {"stored", stored.sent}};
  }
  const auto stored = dcm::pacs_store(peer_, {file});
  return {{"stored_to", fmt::format("{}@{}:{}", peer_.called_ae, peer_.host, peer_.port)}, {"stored", stored.sent}};
}

nlohmann::json RemoteStudy::source() const {
  if (!active()) return nullptr;
  if (dicomweb_) return {{"dicomweb", dcm::without_credentials(server_.url)}, {"study", study_}};
  return {{"peer", fmt::format("{}@{}:{}", peer_.called_ae, peer_.host, peer_.port)}, {"study", study_}};
}

}  // namespace sagitta::cli

#pragma once
// `segment --pacs AE@host:port --study UID` and `segment --dicomweb URL --study UID`: the study is
// pulled (C-GET or WADO-RS) into a hidden folder of the outputs, removed when the run ends, and
// the DICOM objects written go back (C-STORE or STOW-RS) with store().
#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "parameter_table.h"
#include "progress.h"
#include "sagitta/dicom/dicomweb.h"
#include "sagitta/dicom/pacs.h"

namespace sagitta::cli {

// pacs, dicomweb, study, the PACS' AE title and timeouts, the DICOMweb server's options.
std::vector<Parameter> remote_study_parameters();

class RemoteStudy {
public:
  RemoteStudy() = default;  // neither PACS nor DICOMweb
  // Retrieves the study when --pacs or --dicomweb is given (into `outputs`/.sagitta-*-study-<pid>);
  // throws sagitta::Error for contradicting options and the client's DicomError for failures.
  RemoteStudy(const Arguments& a, const std::filesystem::path& outputs, Progress& progress);
  RemoteStudy(const RemoteStudy&) = delete;
  RemoteStudy& operator=(const RemoteStudy&) = delete;
  ~RemoteStudy();

  bool active() const { return !folder_.empty(); }
  // The retrieved folder when active, else the command's input arguments.
  std::vector<std::string> inputs(const Arguments& a) const;
  // Stores `file` where the study came from; what the report says about it.
  nlohmann::json store(const std::filesystem::path& file) const;
  // Where the study came from, for the report's input (null when not active).
  nlohmann::json source() const;

private:
  bool dicomweb_ = false;
  sagitta::dicom::PacsPeer peer_;
  sagitta::dicom::DicomWebServer server_;
  std::string study_;
  std::filesystem::path folder_;
};

}  // namespace sagitta::cli

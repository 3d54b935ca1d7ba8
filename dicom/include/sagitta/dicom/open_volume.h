#pragma once
// "A DICOM folder or a volume file": the one way every command and training opens its input.
// A folder is scanned and one stack selected and loaded (DICOM geometry, decisions); anything else
// is read as a volume file (NRRD, NIfTI, MHA).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/core/image.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/series_info.h"

namespace sagitta::dicom {

struct OpenOptions {
  std::string series;  // stack id, SeriesNumber or SeriesInstanceUID when a folder holds several
  int threads = 0;     // scanning and decoding threads; 0: all hardware threads
  // A multi-volume stack (a time series) is refused, naming `purpose` ("segment", "explain"...);
  // when false its first volume is used.
  bool single_volume = true;
  std::string purpose = "process";
};

struct OpenedVolume {
  Image::Pointer volume;
  std::optional<SeriesInfo> info;   // DICOM input only: what derived objects (SEG) reference
  std::string modality;             // DICOM Modality ("" for volume files)
  nlohmann::json description;       // for reports: path, kind ("dicom"/"volume"), stack, geometry
  std::vector<Decision> decisions;  // the scan's and the load's
};

// Throws DicomError for a folder without a usable stack, an ambiguous selection or a path that
// does not exist; sagitta::Error for an unreadable volume file.
OpenedVolume open_volume(const std::filesystem::path& path, const OpenOptions& options = {});

}  // namespace sagitta::dicom

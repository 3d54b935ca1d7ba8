#pragma once
// An RGB picture (e.g. the viewer's rendering of a heatmap or label overlay on a slice) as a
// DICOM Secondary Capture image in the source study: the one derived object every PACS viewer
// shows.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/series_info.h"

namespace sagitta::dicom {

struct RgbPicture {
  int width = 0, height = 0;
  std::vector<std::uint8_t> rgb;  // row by row from the top, 3 bytes (R, G, B) per pixel
};

struct SecondaryCaptureOptions {
  std::string series_description = "Sagitta overlay";
  int series_number = 0;    // 0: the source's series number + 3000
  std::string series_instance_uid;  // empty: a new series (pass one UID to group several pictures)
  int instance_number = 1;
  int source_slice = -1;    // slice of `source` shown (referenced as source image), -1: none
  std::string comment;      // Image Comments, e.g. "Grad-CAM for liver, slice 42"
  std::string software_version = "sagitta";
};

struct SecondaryCaptureResult {
  std::string sop_instance_uid, series_instance_uid;
  std::vector<std::string> notes;  // what had to be made up because the source lacks it (UIDs)
};

// Writes a single-frame Secondary Capture Image (1.2.840.10008.5.1.4.1.1.7), RGB 8 bits,
// with the source's patient and study. Atomic. Throws DicomError for an empty or inconsistent
// picture or an unwritable destination.
SecondaryCaptureResult write_secondary_capture(const RgbPicture& picture, const SeriesInfo& source,
                                               const std::filesystem::path& out,
                                               const SecondaryCaptureOptions& options = {});

}  // namespace sagitta::dicom

#pragma once
// Reading the attributes Sagitta needs from one DICOM header: series descriptors and one Frame
// per image plane (single-frame, enhanced multi-frame with functional groups, Siemens mosaic).
#include <string>
#include <vector>

#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/series_info.h"

class DcmDataset;
class DcmItem;

namespace sagitta::dicom::detail {

struct PixelFormat {
  int rows = 0, columns = 0, samples_per_pixel = 1;
  int bits_allocated = 0, bits_stored = 0, high_bit = 0;
  bool pixel_signed = false;
  std::string photometric;
  int number_of_frames = 1;
};

struct HeaderRecord {
  SeriesInfo info;  // descriptors only (slices empty)
  PixelFormat format;
  std::vector<Frame> frames;
  std::vector<std::string> notes;  // decisions taken while reading this header (e.g. mosaic)
};

// Reads series descriptors from a dataset.
SeriesInfo read_series_info(DcmItem& dataset);

// Reads the pixel format; throws DicomError (naming `path`) on absurd or inconsistent values.
PixelFormat read_pixel_format(DcmItem& dataset, const std::string& path);

// Reads descriptors, pixel format and frames. Throws DicomError for an image whose geometry
// is missing or nonsensical.
HeaderRecord read_header(DcmDataset& dataset, const std::string& path,
                         const std::string& transfer_syntax_uid);

}  // namespace sagitta::dicom::detail

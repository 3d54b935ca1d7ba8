#pragma once
// Finding DICOM images in folders and grouping them into stacks that each make one volume
// (or one multi-volume series). Reads headers only; pixel data is read by load().
#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/series_info.h"

namespace sagitta::dicom {

// One 2D image plane: a single-frame instance, one frame of a multi-frame instance, or one
// tile of a Siemens mosaic.
struct Frame {
  std::string path;
  std::string sop_instance_uid;
  std::string sop_class_uid;
  std::string transfer_syntax_uid;
  int frame = 0;         // 1-based frame in a multi-frame instance, 0 for single-frame
  int mosaic_tile = -1;  // tile index in a Siemens mosaic, -1 otherwise
  int rows = 0, columns = 0;
  std::array<double, 3> position{};      // ImagePositionPatient of the first pixel (LPS, mm)
  std::array<double, 6> orientation{};   // ImageOrientationPatient: row then column direction
  std::array<double, 2> pixel_spacing{}; // between rows, between columns (mm)
  double rescale_slope = 1.0, rescale_intercept = 0.0;
  int bits_stored = 16;       // stored bits and sign: with the rescale, the range of values
  bool pixel_signed = false;
  int instance_number = 0, acquisition_number = 0, temporal_position = 0, echo_number = 0;
  double acquisition_time = 0.0;  // seconds since midnight; trigger time added when present
  double gantry_tilt = 0.0;       // (0018,1120) degrees, informative only
  double slice_thickness = 0.0, spacing_between_slices = 0.0;  // used for single-slice stacks
  std::string image_type;
  std::string image_kind;  // "" (magnitude or unmarked), "phase", "real", "imaginary", "field map"
  bool localizer = false;
};

// Why a file was skipped, a series split or a value adjusted. Shown by `sagitta info --json`
// and copied into every report.
struct Decision {
  std::string subject;  // a file path or a series/stack description
  std::string what;     // what was decided, and why
};

struct Stack {
  std::string id;  // stable, human readable: "<SeriesNumber>" or "<SeriesNumber>.<k>"
  SeriesInfo info; // descriptors; info.slices is filled by load()
  std::vector<Frame> frames;
  std::string split_reason;  // why this stack is separate from its series' others (empty if whole)
  // Convenience descriptors of the stack, from its first frame.
  int rows() const { return frames.empty() ? 0 : frames.front().rows; }
  int columns() const { return frames.empty() ? 0 : frames.front().columns; }
  std::string orientation_label() const;  // e.g. "axial", "sagittal", "coronal", "oblique"
};

struct ScanResult {
  std::vector<Stack> stacks;         // ordered by study, series number, stack id
  std::vector<Decision> decisions;   // skipped files, splits
  std::size_t files_seen = 0;
  std::size_t files_used = 0;
};

struct ScanOptions {
  bool recursive = true;
  int threads = 0;  // 0: all hardware threads
};

// Scans files and folders (recursively). Throws DicomError when nothing usable is found.
ScanResult scan(const std::vector<std::filesystem::path>& inputs, const ScanOptions& options = {});

// Finds a stack by SeriesInstanceUID, series number, or stack id ("3", "3.2");
// throws DicomError listing what exists when the selector matches nothing or is ambiguous.
const Stack& select_stack(const ScanResult& scan, const std::string& selector);

}  // namespace sagitta::dicom

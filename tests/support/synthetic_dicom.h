#pragma once
// Writes synthetic DICOM series with DCMTK for tests, benchmarks and the shipped demo data.
// Every series has known geometry and bright markers at known physical (LPS, mm) points,
// so a test can check that a loader puts each marker where it belongs, using only the
// output's own header.
#include <array>
#include <filesystem>
#include <string>
#include <vector>

namespace sagitta::testing {

using Point = std::array<double, 3>;

struct Marker {
  Point lps{};          // physical position of the marker's centre (mm, LPS)
  double radius = 2.0;  // mm; voxels whose centre lies within the radius get `value`
  double value = 1000.0;  // in output (rescaled) units
  // Non-zero: an axis-aligned (LPS) ellipsoid with these semi-axes (mm) instead of a sphere.
  std::array<double, 3> semi_axes{0, 0, 0};
  // The time point (0-based) the marker exists in; -1: every time point.
  int time_point = -1;
};

struct SeriesSpec {
  int rows = 32, columns = 32, slices = 16;
  std::array<double, 2> pixel_spacing{1.0, 1.0};  // between rows, between columns
  double slice_spacing = 2.0;                     // along `slice_direction`
  std::array<double, 6> orientation{1, 0, 0, 0, 1, 0};  // ImageOrientationPatient
  // Direction in which successive slices' ImagePositionPatient advances; by default the normal
  // (row x column). A direction that is not the normal makes a gantry-tilted series.
  std::array<double, 3> slice_direction{0, 0, 0};
  Point first_position{-16, -16, -16};  // ImagePositionPatient of the first slice
  std::vector<int> skip_slices;         // slice indices not written (missing slices)
  std::vector<Marker> markers;
  double background = 0.0;              // output units
  double rescale_slope = 1.0, rescale_intercept = 0.0;
  bool pixel_signed = true;
  int bits_allocated = 16;  // 8 or 16
  int bits_stored = 0;      // 0: bits_allocated
  // Explicit VR little endian; also implicit (1.2.840.10008.1.2), big endian (...1.2.2),
  // deflate (...1.2.1.99) and RLE (...1.2.5).
  std::string transfer_syntax = "1.2.840.10008.1.2.1";
  // MONOCHROME1: the stored value written is (min + max of the stored range) - s, i.e.
  // maxStored - s for unsigned pixels, so inverting over the stored range restores s.
  bool monochrome1 = false;
  // One Enhanced CT (Enhanced MR for modality MR) instance with per-frame functional groups.
  bool multiframe = false;
  // Names unrelated to slice order and InstanceNumber reversed (multi-frame: frames reversed).
  bool shuffle_file_names = false;
  int time_points = 1;             // >1: a multi-volume series (same positions repeated)
  double gantry_tilt_degrees = 0.0;  // value written to (0018,1120) (informative)
  std::string modality = "CT";
  std::string series_instance_uid;  // generated when empty
  std::string study_instance_uid;   // generated when empty
  std::string frame_of_reference_uid;  // generated when empty
  int series_number = 1;
  std::string series_description = "synthetic";
  std::string image_type = "ORIGINAL\\PRIMARY\\AXIAL";
  std::string file_prefix = "slice";
  // Patient and study descriptors.
  std::string patient_name = "Synthetic^Phantom";
  std::string patient_id = "SYN0001";
  std::string study_description = "Sagitta synthetic study";
  std::string study_id = "1";
};

// Physical (LPS, mm) centre of voxel (column i, row j) of slice k:
// first_position + k * slice_spacing * slice_dir + i * pixel_spacing[1] * row_dir
//                + j * pixel_spacing[0] * column_dir.
Point voxel_centre(const SeriesSpec& spec, double i, double j, double k);

// Unit row direction, column direction, normal (row x column) and slice direction of `spec`.
std::array<double, 3> row_direction(const SeriesSpec& spec);
std::array<double, 3> column_direction(const SeriesSpec& spec);
std::array<double, 3> normal_direction(const SeriesSpec& spec);
std::array<double, 3> slice_direction(const SeriesSpec& spec);

// One written image plane: a single-frame instance, or one frame of the multi-frame instance.
struct WrittenSlice {
  std::filesystem::path path;
  std::string sop_instance_uid;
  int slice = 0;       // index k in the spec (before skipping)
  int time_point = 0;  // 0-based
  int frame = 0;       // 1-based frame in the multi-frame instance, 0 for single-frame
  Point position{};    // ImagePositionPatient as computed (before DS formatting)
};

struct WrittenSeries {
  std::vector<std::filesystem::path> files;
  std::vector<WrittenSlice> slices;  // in the order they were written
  std::string study_instance_uid, series_instance_uid, frame_of_reference_uid;
};

// Like write_series, and says which UID holds which slice.
WrittenSeries write_series_detailed(const SeriesSpec& spec, const std::filesystem::path& folder);

// Edits one attribute of an existing DICOM file in place, keeping its transfer syntax
// (for bad-input tests). `tag` is "gggg,eeee" (hex); the VR comes from the dictionary.
// remove_attribute deletes it (top level only). Both throw std::runtime_error on failure.
void set_attribute(const std::filesystem::path& file, const std::string& tag,
                   const std::string& value);
void remove_attribute(const std::filesystem::path& file, const std::string& tag);

// Output value of a voxel centre at `p` for `spec` (background or a marker's value; when
// markers overlap the last one listed wins, so later markers paint over earlier ones), at
// time point 0.
double value_at(const SeriesSpec& spec, const Point& p);
// The same at one time point of a multi-volume series (markers with time_point -1 or `t`).
double value_at(const SeriesSpec& spec, const Point& p, int time_point);

// Writes the series into `folder` (created if needed); returns the files written.
std::vector<std::filesystem::path> write_series(const SeriesSpec& spec,
                                                const std::filesystem::path& folder);

}  // namespace sagitta::testing

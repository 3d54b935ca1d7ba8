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
  int bits_allocated = 16;
  std::string transfer_syntax = "1.2.840.10008.1.2.1";  // explicit VR little endian
  bool monochrome1 = false;
  bool multiframe = false;         // one Enhanced CT instance with per-frame functional groups
  bool shuffle_file_names = false; // names unrelated to slice order, InstanceNumber reversed
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
};

// Output value of a voxel centre at `p` for `spec` (background or a marker's value).
double value_at(const SeriesSpec& spec, const Point& p);

// Writes the series into `folder` (created if needed); returns the files written.
std::vector<std::filesystem::path> write_series(const SeriesSpec& spec,
                                                const std::filesystem::path& folder);

}  // namespace sagitta::testing

#pragma once
// The geometry of a stack: which frames make which output slice of which volume, on what grid.
// Pure arithmetic on the frames' attributes; no pixel data is touched here.
#include <array>
#include <string>
#include <vector>

#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"

namespace sagitta::dicom::detail {

using Vec3 = std::array<double, 3>;

// One contribution to an output slice: a frame, its weight (linear interpolation along the
// normal when resampling) and the in-plane offset (in pixels) at which the output grid samples
// it (non-zero for gantry-tilted stacks, whose slices are sheared).
struct SliceSource {
  std::size_t frame = 0;
  double weight = 1.0;
  double shift_columns = 0.0, shift_rows = 0.0;
};

struct StackGeometry {
  Vec3 row_direction{}, column_direction{}, normal{};
  Vec3 origin{};                 // centre of the first voxel (LPS, mm)
  std::array<double, 3> spacing{};  // along columns (x), rows (y), slices (z)
  int columns = 0, rows = 0, slices = 0, volumes = 0;
  // sources[v][k]: what makes slice k of volume v.
  std::vector<std::vector<std::vector<SliceSource>>> sources;
  bool needs_resampling = false;  // any slice interpolated or shifted
  std::vector<std::string> decisions;
};

// Frame indices grouped by position along the normal (clusters of repeated positions), in
// ascending order, each cluster ordered in time. Throws DicomError on inconsistent planes.
std::vector<std::vector<std::size_t>> position_clusters(const std::vector<Frame>& frames);

// Plans the output grid of a stack. Throws DicomError (with what to do) when the stack cannot
// be placed faithfully under `options`.
StackGeometry plan_geometry(const std::vector<Frame>& frames, const LoadOptions& options);

}  // namespace sagitta::dicom::detail

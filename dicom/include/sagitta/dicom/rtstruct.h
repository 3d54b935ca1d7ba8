#pragma once
// RT Structure Sets (RTSTRUCT) from label maps, and back.
//
// Each label becomes one ROI: per slice of the source series, closed planar contours in patient
// coordinates (LPS, mm) on that slice's plane, each naming its source image (Contour Image
// Sequence). Contours follow the voxel edges (vertices at voxel corners, collinear vertices
// dropped), so filling them at voxel centres gives back exactly the labelled voxels. Holes and
// islands are separate contours of the same ROI, without keyholes: a reader fills a slice's
// contours together by the even-odd rule (a hole is inside its outer contour, so the two cancel),
// which is how treatment planning systems read nested contours.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/seg.h"

namespace sagitta::dicom {

struct RtStructWriteOptions {
  std::string structure_set_label = "SAGITTA";  // Structure Set Label (SH)
  std::string series_description = "Sagitta structures";
  int series_number = 0;                         // 0: the source's series number + 1100
  std::string algorithm_name = "Sagitta";        // ROI Generation Description
  std::string software_version = "sagitta";
};

struct RtStructWriteResult {
  std::string sop_instance_uid, series_instance_uid;
  std::vector<std::string> notes;               // what had to be made up (see SegWriteResult)
  std::vector<std::size_t> contours_per_roi;    // in the order of the descriptions
};

// Writes an RTSTRUCT of `labels` (on `source_grid`, the grid of the loaded source series whose
// SeriesInfo is `source`): one ROI per description (ROI number = position + 1, name and display
// colour from the description). Atomic. Throws DicomError when the geometry does not match, a
// label value has no description, no described label is present, or the file cannot be written.
RtStructWriteResult write_rtstruct(const LabelMap& labels, const itk::ImageBase<3>& source_grid, const SeriesInfo& source,
                                   const std::vector<SegmentDescription>& rois, const std::filesystem::path& out,
                                   const RtStructWriteOptions& options = {});

struct ReadRtStructOptions {
  // ROIs whose name matches one here (case-insensitive) get its label value; the others get
  // their position in the Structure Set ROI Sequence + 1 (after the highest template value).
  std::vector<SegmentDescription> label_template;
};

struct ReadRtStructResult {
  LabelMap::Pointer labels;                 // on the reference grid; later ROIs win where ROIs overlap
  std::vector<SegmentDescription> rois;     // name, colour and the label value used
  std::string sop_instance_uid, frame_of_reference_uid, referenced_series_uid;
  std::vector<std::string> warnings;
};

// Fills the closed planar contours of an RTSTRUCT into a label map on `grid` (even-odd rule at
// voxel centres, per ROI and slice). Throws DicomError for files that are not RTSTRUCTs, a frame
// of reference other than the grid's (when both are known), or contours that lie off the grid's
// slice planes or are not closed planar.
ReadRtStructResult read_rtstruct(const std::filesystem::path& path, const itk::ImageBase<3>& grid,
                                 const SeriesInfo* grid_info = nullptr, const ReadRtStructOptions& options = {});

// True when `path` is a DICOM file of the RT Structure Set SOP class (reads the header only).
bool is_rtstruct_file(const std::filesystem::path& path);

}  // namespace sagitta::dicom

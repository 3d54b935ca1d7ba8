#pragma once
// DICOM Structured Report: a TID 1500 Measurement Report (DCMTK dcmsr/cmr) of a segmentation, one
// measurement group (TID 1411) per structure with its volume and the mean intensity of the source
// image inside it, each naming the SEG's segment (SOP instance + segment number) and the source
// series; the observer is a device (Sagitta and the model).
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/seg.h"

namespace sagitta::dicom {

struct SrWriteOptions {
  std::string algorithm_name = "Sagitta";   // model name (device observer model, algorithm)
  std::string algorithm_version = "1";
  std::string series_description = "Sagitta measurements";
  int series_number = 0;                    // 0: the source's series number + 1200
  std::string software_version = "sagitta";
};

struct StructureMeasurement {
  int label = 0;
  std::string name;
  std::size_t voxels = 0;
  double volume_ml = 0;
  double mean = 0;            // mean source intensity inside the structure
  int segment_number = 0;     // in the referenced SEG
};

struct SrWriteResult {
  std::string sop_instance_uid, series_instance_uid;
  std::vector<StructureMeasurement> measurements;  // one per structure present
  std::vector<std::string> notes;
};

// Volumes (mL) and mean intensities of every described label present in `labels`, measured on
// `image` (both on the same grid).
std::vector<StructureMeasurement> measure_structures(const LabelMap& labels, const Image& image,
                                                     const std::vector<SegmentDescription>& structures);

// Writes the measurement report of `labels` (on `source_grid` = `image`'s grid, the loaded source
// series `source`) to `out`, referencing the segments of the SEG at `seg_file` (matched to the
// descriptions by segment label). The intensity is reported as CT attenuation (HU) for CT and MR
// signal intensity for MR; other modalities get volumes only. Atomic. Throws DicomError when the
// geometry does not match, a label is undescribed, the SEG is unreadable, lacks a structure or
// belongs to another series, or nothing is present.
SrWriteResult write_measurement_report(const LabelMap& labels, const Image& image, const SeriesInfo& source,
                                       const std::vector<SegmentDescription>& structures,
                                       const std::filesystem::path& seg_file, const std::filesystem::path& out,
                                       const SrWriteOptions& options = {});

}  // namespace sagitta::dicom

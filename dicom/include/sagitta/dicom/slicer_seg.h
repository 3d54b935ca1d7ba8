#pragma once
// 3D Slicer segmentation files (.seg.nrrd): the label map as one layer of a "Binary labelmap"
// segmentation, each label a segment with Slicer's per-segment keys (ID, name, colour, label
// value, layer, extent, tags with a DICOM terminology entry from the segment's codes). Slicer
// opens it as a segmentation with names, colours and terminology, not as a plain volume.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/seg.h"

namespace sagitta::dicom {

// True when `path` names a Slicer segmentation file (ends in .seg.nrrd).
bool is_slicer_segmentation_path(const std::filesystem::path& path);

// Slicer's terminology entry for a segment: context~category~type~modifier~anatomic context~
// region~region modifier, codes as scheme^value^meaning ("Tissue" when a code is missing).
std::string slicer_terminology_entry(const SegmentDescription& segment);

// Writes `labels` with one segment per description (Segment0, Segment1... in the given order),
// gzip-compressed, atomically. Throws DicomError when a label value has no description or the
// file cannot be written.
void write_slicer_segmentation(const LabelMap& labels, const std::vector<SegmentDescription>& segments,
                               const std::filesystem::path& out);

}  // namespace sagitta::dicom

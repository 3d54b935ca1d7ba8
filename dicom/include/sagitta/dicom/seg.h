#pragma once
// DICOM Segmentation objects (SEG): label maps in a source series' geometry out (DCMTK dcmseg),
// and SEG objects back into label maps (BINARY, FRACTIONAL and the newer LABELMAP type).
//
// Segment numbers in a SEG are 1..n in the order of the descriptions (DICOM requires them to
// start at 1 and increase by 1). A label value therefore survives a round trip when the reader is
// given the same descriptions (`ReadSegOptions::label_template`, matched by segment label), and
// otherwise reads back as its segment number.
#include <itkImage.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/load.h"
#include "sagitta/dicom/series_info.h"

namespace sagitta::dicom {

using LabelMap = itk::Image<std::uint16_t, 3>;

// A coded concept: (code value, coding scheme designator, code meaning), e.g. ("10200004", "SCT",
// "Liver").
struct CodedConcept {
  std::string value, scheme, meaning;
  bool empty() const { return value.empty(); }
};

// What a segment is. The dicom library knows nothing of model cards: the command layer fills this
// from the card's labels.
struct SegmentDescription {
  int label = 0;            // voxel value in the label map (> 0)
  std::string name;         // Segment Label, e.g. "liver"
  std::array<int, 3> color{128, 128, 128};  // recommended display colour, RGB 0..255
  // Segmented property category and type (CID 7150 / 7151). Empty: SCT "Tissue" for both, the
  // most general concept that is still true of any segmented region.
  CodedConcept category, type;
};

// BINARY: one 1-bit frame per segment and slice (every SEG reader knows it). LABELMAP
// (Supplement 243, Label Map Segmentation Storage): one 8- or 16-bit frame per slice whose pixels
// are segment numbers, colours as a palette; compact, but newer readers only.
enum class SegType { Binary, Labelmap };

struct SegWriteOptions {
  SegType type = SegType::Binary;          // write_seg only
  std::string algorithm_name = "Sagitta";  // model name
  std::string algorithm_version = "1";     // model version
  std::string series_description = "Sagitta segmentation";
  int series_number = 0;                   // 0: the source's series number + 1000 (1000 if none)
  std::string content_label = "SAGITTA";   // Content Label (CS: upper case, <= 16 characters)
  std::string content_description;         // free text, e.g. the command line
  std::string software_version = "sagitta"; // Software Versions of the equipment module
};

// Geometry tolerance (mm) when comparing a label map with its source series.
inline constexpr double kGeometryTolerance = 1e-3;

struct SegWriteResult {
  std::string sop_instance_uid, series_instance_uid;
  // What had to be made up because the source lacks it (anonymised sources without Study/Series
  // Instance or Frame of Reference UIDs): one sentence each, for the report.
  std::vector<std::string> notes;
  std::size_t frames = 0;           // frames written (empty frames are skipped)
  std::vector<std::size_t> frames_per_segment;
};

// Writes a BINARY SEG of `labels` (which must be on `source_grid`, the grid of the loaded source
// series whose SeriesInfo is `source`): one segment per description, one frame per non-empty
// slice and segment, each frame referencing its source instance (and frame). Patient, study and
// frame of reference are copied from the first source file (else from `source`); series and
// instance UIDs are new. Atomic: written to a temporary name next to `out` and renamed.
// Throws DicomError when the geometry does not match, a label has no description, no slice
// has any label, or the file cannot be written.
SegWriteResult write_seg(const LabelMap& labels, const itk::ImageBase<3>& source_grid, const SeriesInfo& source,
                         const std::vector<SegmentDescription>& segments, const std::filesystem::path& out,
                         const SegWriteOptions& options = {});

// Writes a FRACTIONAL (PROBABILITY) SEG: `probabilities[i]` (values 0..1, on `source_grid`) is the
// probability map of `segments[i]`; stored as 8 bits with Maximum Fractional Value 255. Frames
// whose probabilities are all below 1/255 are skipped.
SegWriteResult write_fractional_seg(const std::vector<Image::Pointer>& probabilities, const itk::ImageBase<3>& source_grid,
                                    const SeriesInfo& source, const std::vector<SegmentDescription>& segments,
                                    const std::filesystem::path& out, const SegWriteOptions& options = {});

struct ReadSegOptions {
  // The source series' grid and info, when known: the label map is made on that grid, and every
  // frame must reference an instance of that series and lie on one of its slices. Without them
  // the grid comes from the SEG's own plane positions and pixel measures.
  const itk::ImageBase<3>* reference_grid = nullptr;
  const SeriesInfo* reference = nullptr;
  // Segments whose label matches a name here (case-insensitive) get its label value.
  std::vector<SegmentDescription> label_template;
};

struct ReadSegResult {
  LabelMap::Pointer labels;                 // 0 background, else the segment's label value
  std::vector<SegmentDescription> segments; // in segment-number order; .label as used in `labels`
  // One mask (0/1) per segment, filled only when segments overlap (a label map cannot hold
  // overlapping segments: there, the highest segment number wins in `labels`).
  std::vector<LabelMap::Pointer> masks;
  bool overlapping = false;
  // FRACTIONAL SEGs: one map per segment, values 0..1; `labels` then holds the segment with the
  // highest fraction where it is >= 0.5.
  std::vector<Image::Pointer> fractions;
  std::string segmentation_type;            // BINARY, FRACTIONAL or LABELMAP
  std::string sop_instance_uid, series_instance_uid, study_instance_uid, frame_of_reference_uid;
  std::string referenced_series_uid;        // from the Referenced Series Sequence (first item)
  std::vector<std::string> referenced_instances;  // every source SOP Instance UID referenced
  std::vector<std::string> warnings;
};

// Reads a SEG. Throws DicomError for files that are not SEGs, unsupported encodings, frames
// without position, frames that reference images outside the reference series, or frames off its
// grid.
ReadSegResult read_seg(const std::filesystem::path& path, const ReadSegOptions& options = {});

// True when `path` is a DICOM file of a SEG SOP class (reads the header only; false otherwise).
bool is_seg_file(const std::filesystem::path& path);

}  // namespace sagitta::dicom

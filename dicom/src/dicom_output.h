#pragma once
// Shared by the writers of derived DICOM objects (SEG, Parametric Map, Secondary Capture):
// DS formatting, new UIDs, series numbering, content identification, and saving atomically.
#include <array>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <itkImage.h>

class ContentIdentificationMacro;
class DcmFileFormat;
class DcmIODCommon;
class DcmItem;

#include "sagitta/dicom/seg.h"


namespace sagitta::dicom::detail {

// `text` made valid UTF-8 and cut to at most `max_bytes` bytes at a character boundary (the
// length limits of LO/SH/ST are in characters; bytes are the safe side).
std::string fit_text(const std::string& text, std::size_t max_bytes);

// A decimal string (DS, at most 16 characters) as exact as fits.
std::string ds(double v);

// A fresh UID under DCMTK's root (`root`: SITE_SERIES_UID_ROOT, SITE_INSTANCE_UID_ROOT...).
std::string new_uid(const char* root);

// Today's date (YYYYMMDD) and time (HHMMSS).
std::string dicom_date();
std::string dicom_time();

// Saves with a meta header in `xfer` (default: explicit VR little endian) to a hidden temporary
// name in the destination folder, then renames it into place. Throws DicomError (nothing left
// behind) when the folder is missing or unwritable, or the write fails.
void save_atomically(DcmFileFormat& file, const std::filesystem::path& out, int xfer = -1);

// Checks that `image` lies on `grid` (size, origin, spacing, direction) and that `source` lists
// one slice per slice of the grid; throws DicomError saying what differs.
void check_on_source_grid(const itk::ImageBase<3>& image, const itk::ImageBase<3>& grid, const SeriesInfo& source,
                          const std::string& what);

// Patient, study, series-independent attributes copied into `item` from the first readable
// source file, else from `source`'s descriptors: patient and general study modules, frame of
// reference, and the study-level equipment-independent attributes.
void copy_patient_study(DcmItem& item, const SeriesInfo& source);

// A dataset with the patient/study/frame-of-reference attributes of `source` (for importers that
// want a source dataset): the first readable source file, else one made from `source`; its text
// converted to UTF-8 (ISO_IR 192), and missing Study Instance and Frame of Reference UIDs filled
// with stand_in_uid().
void source_dataset(DcmFileFormat& out, const SeriesInfo& source);

// Adds the Referenced Series Sequence (0008,1115): the source series and every source instance.
void put_referenced_series(DcmItem& item, const SeriesInfo& source);

// The Series Number of a derived series: `requested` when positive, else the source's Series
// Number plus `offset` (just `offset` when the source's is not a number).
int derived_series_number(int requested, const SeriesInfo& source, int offset);

// Content identification of an object Sagitta made: instance number 1, `label` and
// `description` (already cut to their VR lengths), creator "Sagitta^<algorithm name>".
void set_content_identification(ContentIdentificationMacro& content, const std::string& label,
                                const std::string& description, const std::string& algorithm_name);

// Index into `segments` per label value (-1: none), after checking that every description has a
// value 1..65535 used once and every non-zero voxel value of `labels` is described. Throws
// DicomError naming `what` otherwise. `present` (optional) receives which values occur.
std::vector<int> segment_index_of_labels(const LabelMap& labels, const std::vector<SegmentDescription>& segments,
                                         const std::string& what, std::vector<bool>* present = nullptr);

struct DerivedUids {
  std::string sop_instance_uid, series_instance_uid;
  std::vector<std::string> notes;  // source_repairs()
};

// A UID for something the source lacks (`what`: "study", "series", "frame of reference"):
// "2.25." and a hash of the source's SOP Instance UIDs, so every object made from the same
// source gets the same one.
std::string stand_in_uid(const SeriesInfo& source, const std::string& what);

// What a derived object of `source` has to make up (missing type 1 UIDs), one sentence each, for
// the caller's report.
std::vector<std::string> source_repairs(const SeriesInfo& source);

// Sets Specific Character Set to ISO_IR 192 when any text element holds non-ASCII bytes (all
// text of a derived object is UTF-8), and removes it otherwise.
void declare_utf8(DcmItem& dataset);

// Saves an object built with one of dcmiod's IOD classes (SEG, Parametric Map): `write` puts
// `iod` into the dataset (and throws if it cannot); then every patient/study attribute of the
// source is copied (the IOD classes import only those they model), the source series and
// instances are named, and the file is saved atomically. Returns the object's UIDs.
DerivedUids save_iod(DcmIODCommon& iod, const std::function<void(DcmItem&)>& write, const SeriesInfo& source,
                     const std::filesystem::path& out);

}  // namespace sagitta::dicom::detail

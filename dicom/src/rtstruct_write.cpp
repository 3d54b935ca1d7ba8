// RTSTRUCT writing with dcmdata: the RT Structure Set IOD is small enough to build attribute by
// attribute (patient, study, RT series, equipment, structure set, ROI contour, RT ROI
// observations, SOP common). Contours come from sagitta/core/contours.h (voxel-edge loops).
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fmt/format.h>

#include <set>

#include "dicom_output.h"
#include "sagitta/core/contours.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/rtstruct.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

namespace {

constexpr const char* kRtStructureSetStorage = "1.2.840.10008.5.1.4.1.1.481.3";
// Study Component Management SOP Class: what RT Referenced Study Sequence items name.
constexpr const char* kStudyComponentManagement = "1.2.840.10008.3.1.2.3.1";
// SCT "Anatomical Structure": ROIs of that category are organs for RT ROI Interpreted Type.
constexpr const char* kAnatomicalStructure = "123037004";

void put(DcmItem& item, const DcmTagKey& tag, const std::string& value, const fs::path& out) {
  const OFCondition c = item.putAndInsertString(tag, value.c_str());
  if (c.bad()) throw DicomError(fmt::format("{}: cannot build the RTSTRUCT ({}: {})", out.string(), DcmTag(tag).getTagName(), c.text()));
}

DcmItem& new_item(DcmItem& parent, const DcmTagKey& sequence, const fs::path& out) {
  DcmItem* item = nullptr;
  if (parent.findOrCreateSequenceItem(sequence, item, -2).bad() || !item)
    throw DicomError(fmt::format("{}: cannot build the RTSTRUCT ({})", out.string(), DcmTag(sequence).getTagName()));
  return *item;
}

// A coordinate in mm with micrometre resolution, without trailing zeros (DS, short).
std::string mm(double v) {
  std::string s = fmt::format("{:.3f}", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

void put_image_reference(DcmItem& item, const SliceSource& slice, const fs::path& out) {
  put(item, DCM_ReferencedSOPClassUID, slice.sop_class_uid, out);
  put(item, DCM_ReferencedSOPInstanceUID, slice.sop_instance_uid, out);
  if (slice.frame > 0) put(item, DCM_ReferencedFrameNumber, std::to_string(slice.frame), out);
}

struct Contour {
  std::size_t slice;
  std::size_t points;
  std::string data;  // x\y\z\x\y\z...
};

// Every ROI's contours, slice by slice.
std::vector<std::vector<Contour>> trace_contours(const LabelMap& labels, const std::vector<int>& roi_of_label) {
  const auto size = labels.GetLargestPossibleRegion().GetSize();
  const int columns = static_cast<int>(size[0]), rows = static_cast<int>(size[1]);
  const std::size_t plane = size[0] * size[1];
  std::vector<std::vector<Contour>> per_roi;
  for (std::size_t k = 0; k < size[2]; ++k) {
    const auto loops = contours::trace(labels.GetBufferPointer() + k * plane, columns, rows);
    for (const auto& [value, polygons] : loops) {
      const auto roi = static_cast<std::size_t>(roi_of_label[value]);
      if (per_roi.size() <= roi) per_roi.resize(roi + 1);
      for (const auto& polygon : polygons) {
        Contour c{k, polygon.size(), {}};
        c.data.reserve(polygon.size() * 30);
        for (const auto& v : polygon) {
          itk::ContinuousIndex<double, 3> index;
          index[0] = v.x;
          index[1] = v.y;
          index[2] = static_cast<double>(k);
          itk::Point<double, 3> p;
          labels.TransformContinuousIndexToPhysicalPoint(index, p);
          for (int a = 0; a < 3; ++a) {
            if (!c.data.empty()) c.data += '\\';
            c.data += mm(p[a]);
          }
        }
        per_roi[roi].push_back(std::move(c));
      }
    }
  }
  return per_roi;
}

}  // namespace

RtStructWriteResult write_rtstruct(const LabelMap& labels, const itk::ImageBase<3>& source_grid, const SeriesInfo& source,
                                   const std::vector<SegmentDescription>& rois, const fs::path& out,
                                   const RtStructWriteOptions& options) {
  register_codecs();
  detail::check_on_source_grid(labels, source_grid, source, out.string());
  if (rois.empty()) throw DicomError(out.string() + ": no structures to write");
  std::vector<bool> present;
  const std::vector<int> roi_of_label = detail::segment_index_of_labels(labels, rois, out.string(), &present);
  bool any = false;
  for (const auto& r : rois) any = any || present[static_cast<std::size_t>(r.label)];
  if (!any) throw DicomError(out.string() + ": the label map holds none of the described labels; nothing to write");

  std::vector<std::vector<Contour>> contours = trace_contours(labels, roi_of_label);
  contours.resize(rois.size());

  DcmFileFormat file;
  DcmDataset& ds = *file.getDataset();
  detail::copy_patient_study(ds, source);
  OFString for_uid, study_uid;
  ds.findAndGetOFString(DCM_FrameOfReferenceUID, for_uid);
  ds.findAndGetOFString(DCM_StudyInstanceUID, study_uid);
  // The RT Structure Set IOD has a Frame of Reference module too (dciodvfy requires it).
  if (for_uid.empty()) {
    for_uid = detail::stand_in_uid(source, "frame of reference").c_str();
    put(ds, DCM_FrameOfReferenceUID, for_uid.c_str(), out);
  }
  if (!ds.tagExists(DCM_PositionReferenceIndicator)) ds.insertEmptyElement(DCM_PositionReferenceIndicator);
  if (study_uid.empty()) {
    study_uid = detail::stand_in_uid(source, "study").c_str();
    put(ds, DCM_StudyInstanceUID, study_uid.c_str(), out);
  }

  RtStructWriteResult result;
  result.sop_instance_uid = detail::new_uid(SITE_INSTANCE_UID_ROOT);
  result.series_instance_uid = detail::new_uid(SITE_SERIES_UID_ROOT);
  result.notes = detail::source_repairs(source);
  const std::string date = detail::dicom_date(), time = detail::dicom_time();
  put(ds, DCM_SOPClassUID, kRtStructureSetStorage, out);
  put(ds, DCM_SOPInstanceUID, result.sop_instance_uid, out);
  put(ds, DCM_InstanceCreationDate, date, out);
  put(ds, DCM_InstanceCreationTime, time, out);
  // RT series and general equipment.
  put(ds, DCM_Modality, "RTSTRUCT", out);
  put(ds, DCM_SeriesInstanceUID, result.series_instance_uid, out);
  put(ds, DCM_SeriesNumber, std::to_string(detail::derived_series_number(options.series_number, source, 1100)), out);
  put(ds, DCM_SeriesDescription, detail::fit_text(options.series_description, 64), out);
  put(ds, DCM_SeriesDate, date, out);
  put(ds, DCM_SeriesTime, time, out);
  ds.insertEmptyElement(DCM_OperatorsName);
  put(ds, DCM_Manufacturer, "Sagitta", out);
  put(ds, DCM_ManufacturerModelName, detail::fit_text(options.algorithm_name, 64), out);
  put(ds, DCM_SoftwareVersions, detail::fit_text(options.software_version, 64), out);
  // Structure set.
  put(ds, DCM_InstanceNumber, "1", out);
  put(ds, DCM_StructureSetLabel, detail::fit_text(options.structure_set_label, 16), out);
  put(ds, DCM_StructureSetName, detail::fit_text(options.algorithm_name, 64), out);
  put(ds, DCM_StructureSetDate, date, out);
  put(ds, DCM_StructureSetTime, time, out);

  DcmItem& frame = new_item(ds, DCM_ReferencedFrameOfReferenceSequence, out);
  put(frame, DCM_FrameOfReferenceUID, for_uid.c_str(), out);
  DcmItem& study = new_item(frame, DCM_RTReferencedStudySequence, out);
  put(study, DCM_ReferencedSOPClassUID, kStudyComponentManagement, out);
  put(study, DCM_ReferencedSOPInstanceUID, study_uid.c_str(), out);
  DcmItem& series = new_item(study, DCM_RTReferencedSeriesSequence, out);
  put(series, DCM_SeriesInstanceUID,
      source.series_instance_uid.empty() ? detail::stand_in_uid(source, "series") : source.series_instance_uid, out);
  const auto& slices = source.slices.front();
  {
    std::set<std::pair<std::string, int>> seen;
    for (const auto& s : slices)
      if (seen.insert({s.sop_instance_uid, s.frame}).second) put_image_reference(new_item(series, DCM_ContourImageSequence, out), s, out);
  }

  bool long_values = false;
  for (std::size_t r = 0; r < rois.size(); ++r) {
    const auto& d = rois[r];
    const std::string number = std::to_string(r + 1);
    DcmItem& roi = new_item(ds, DCM_StructureSetROISequence, out);
    put(roi, DCM_ROINumber, number, out);
    put(roi, DCM_ReferencedFrameOfReferenceUID, for_uid.c_str(), out);
    put(roi, DCM_ROIName, detail::fit_text(d.name.empty() ? fmt::format("label {}", d.label) : d.name, 64), out);
    put(roi, DCM_ROIGenerationAlgorithm, "AUTOMATIC", out);
    put(roi, DCM_ROIGenerationDescription, detail::fit_text(options.algorithm_name, 64), out);

    DcmItem& roi_contour = new_item(ds, DCM_ROIContourSequence, out);
    put(roi_contour, DCM_ReferencedROINumber, number, out);
    put(roi_contour, DCM_ROIDisplayColor, fmt::format("{}\\{}\\{}", d.color[0], d.color[1], d.color[2]), out);
    std::size_t n = 0;
    for (const auto& c : contours[r]) {
      DcmItem& contour = new_item(roi_contour, DCM_ContourSequence, out);
      put_image_reference(new_item(contour, DCM_ContourImageSequence, out), slices[c.slice], out);
      put(contour, DCM_ContourGeometricType, "CLOSED_PLANAR", out);
      put(contour, DCM_NumberOfContourPoints, std::to_string(c.points), out);
      put(contour, DCM_ContourNumber, std::to_string(++n), out);
      put(contour, DCM_ContourData, c.data, out);
      long_values = long_values || c.data.size() > 65534;
    }
    result.contours_per_roi.push_back(n);

    DcmItem& observation = new_item(ds, DCM_RTROIObservationsSequence, out);
    put(observation, DCM_ObservationNumber, number, out);
    put(observation, DCM_ReferencedROINumber, number, out);
    put(observation, DCM_RTROIInterpretedType, d.category.value == kAnatomicalStructure ? "ORGAN" : "", out);
    observation.insertEmptyElement(DCM_ROIInterpreter);
  }
  detail::declare_utf8(ds);
  // Explicit VR gives DS values 16-bit lengths; a contour with thousands of points needs the
  // implicit VR syntax (the default of DICOM, and what most RTSTRUCTs use anyway).
  detail::save_atomically(file, out, long_values ? static_cast<int>(EXS_LittleEndianImplicit) : -1);
  return result;
}

}  // namespace sagitta::dicom

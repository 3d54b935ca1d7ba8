// TID 1500 Measurement Reports with DCMTK's dcmsr/cmr template classes: the templates build and
// check the content tree; DSRDocument writes the SR document modules.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmsr/cmr/tid1500.h>
#include <dcmtk/dcmsr/codes/dcm.h>
#include <dcmtk/dcmsr/codes/sct.h>
#include <dcmtk/dcmsr/dsrdoc.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "dicom_output.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/sr.h"
#include "ascii.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

namespace {

const CodedConcept kTissue{"85756007", "SCT", "Tissue"};
constexpr const char* kSegmentationStorage = "1.2.840.10008.5.1.4.1.1.66.4";

// Sets the Referenced SOP Class UID of every reference to `instance` in `item` (recursively).
void fix_referenced_class(DcmItem& item, const std::string& instance, const std::string& sop_class) {
  OFString uid;
  if (item.findAndGetOFString(DCM_ReferencedSOPInstanceUID, uid).good() && uid == instance.c_str())
    item.putAndInsertString(DCM_ReferencedSOPClassUID, sop_class.c_str());
  for (unsigned long e = 0; e < item.card(); ++e) {
    DcmElement* element = item.getElement(e);
    if (element->ident() != EVR_SQ) continue;
    auto* sequence = static_cast<DcmSequenceOfItems*>(element);
    for (unsigned long i = 0; i < sequence->card(); ++i) fix_referenced_class(*sequence->getItem(i), instance, sop_class);
  }
}

void check(const OFCondition& c, const fs::path& out, const std::string& what) {
  if (c.bad()) throw DicomError(fmt::format("{}: cannot build the measurement report ({}: {})", out.string(), what, c.text()));
}

DSRCodedEntryValue coded(const CodedConcept& c) {
  return DSRCodedEntryValue(c.value.c_str(), c.scheme.c_str(), c.meaning.c_str());
}

// A number as DS (at most 16 characters).
std::string number(double v) { return detail::ds(v); }

// Segment label (lower case) -> segment number, and the SEG's series, from the SEG file.
struct SegIdentity {
  DcmFileFormat file;
  std::map<std::string, Uint16> numbers;
  std::string series_uid, sop_class_uid, sop_instance_uid;
};

void read_seg_identity(const fs::path& seg_file, SegIdentity& seg) {
  if (seg.file.loadFileUntilTag(seg_file.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect,
                                DCM_PixelData)
          .bad())
    throw DicomError(seg_file.string() + ": the SEG to reference cannot be read");
  DcmDataset& ds = *seg.file.getDataset();
  OFString v;
  ds.findAndGetOFString(DCM_SOPClassUID, v);
  seg.sop_class_uid = v.c_str();
  ds.findAndGetOFString(DCM_SOPInstanceUID, v);
  seg.sop_instance_uid = v.c_str();
  ds.findAndGetOFString(DCM_SeriesInstanceUID, v);
  seg.series_uid = v.c_str();
  DcmSequenceOfItems* segments = nullptr;
  if (ds.findAndGetSequence(DCM_SegmentSequence, segments).bad() || !segments)
    throw DicomError(seg_file.string() + ": not a SEG (no Segment Sequence)");
  for (unsigned long i = 0; i < segments->card(); ++i) {
    DcmItem* item = segments->getItem(i);
    Uint16 n = 0;
    item->findAndGetUint16(DCM_SegmentNumber, n);
    item->findAndGetOFString(DCM_SegmentLabel, v);
    seg.numbers[detail::ascii_lower(v.c_str())] = n;
  }
}

// The intensity concept and unit of a modality (CID 7180 via CID 7469), or none.
bool intensity_concept(const std::string& modality, DSRCodedEntryValue& concept, DSRCodedEntryValue& unit) {
  if (modality == "CT") {
    concept = DSRCodedEntryValue("112031", "DCM", "Attenuation Coefficient");
    unit = DSRCodedEntryValue("[hnsf'U]", "UCUM", "Hounsfield unit");
    return true;
  }
  if (modality == "MR") {
    concept = DSRCodedEntryValue("110852", "DCM", "MR signal intensity");
    unit = DSRCodedEntryValue("1", "UCUM", "no units");
    return true;
  }
  return false;
}

}  // namespace

std::vector<StructureMeasurement> measure_structures(const LabelMap& labels, const Image& image,
                                                     const std::vector<SegmentDescription>& structures) {
  std::vector<std::size_t> count(65536, 0);
  std::vector<double> sum(65536, 0.0);
  const std::size_t n = labels.GetLargestPossibleRegion().GetNumberOfPixels();
  if (image.GetLargestPossibleRegion().GetNumberOfPixels() != n)
    throw DicomError("measurements: the label map and the image differ in size");
  const std::uint16_t* l = labels.GetBufferPointer();
  const float* v = image.GetBufferPointer();
  for (std::size_t i = 0; i < n; ++i) {
    ++count[l[i]];
    sum[l[i]] += v[i];
  }
  const auto& s = labels.GetSpacing();
  const double voxel_ml = s[0] * s[1] * s[2] / 1000.0;
  std::vector<StructureMeasurement> out;
  for (const auto& d : structures) {
    if (d.label <= 0 || d.label > 65535 || count[static_cast<std::size_t>(d.label)] == 0) continue;
    StructureMeasurement m;
    m.label = d.label;
    m.name = d.name;
    m.voxels = count[static_cast<std::size_t>(d.label)];
    m.volume_ml = static_cast<double>(m.voxels) * voxel_ml;
    m.mean = sum[static_cast<std::size_t>(d.label)] / static_cast<double>(m.voxels);
    out.push_back(m);
  }
  return out;
}

SrWriteResult write_measurement_report(const LabelMap& labels, const Image& image, const SeriesInfo& source,
                                       const std::vector<SegmentDescription>& structures, const fs::path& seg_file,
                                       const fs::path& out, const SrWriteOptions& options) {
  register_codecs();
  detail::check_on_source_grid(labels, image, source, out.string());
  detail::segment_index_of_labels(labels, structures, out.string());
  SrWriteResult result;
  result.measurements = measure_structures(labels, image, structures);
  if (result.measurements.empty())
    throw DicomError(out.string() + ": the label map holds none of the described labels; nothing to measure");

  SegIdentity seg;
  read_seg_identity(seg_file, seg);
  const std::string source_series =
      source.series_instance_uid.empty() ? detail::stand_in_uid(source, "series") : source.series_instance_uid;
  for (auto& m : result.measurements) {
    const auto it = seg.numbers.find(detail::ascii_lower(m.name));
    if (it == seg.numbers.end())
      throw DicomError(fmt::format("{}: the SEG {} has no segment '{}'", out.string(), seg_file.string(), m.name));
    m.segment_number = it->second;
  }

  TID1500_MeasurementReport report(CMR_CID7021::ImagingMeasurementReport);
  check(report.setLanguage(CID5000_Languages::English), out, "language");
  check(report.getObservationContext().addDeviceObserver(detail::new_uid(SITE_INSTANCE_UID_ROOT),
                                                         detail::fit_text(options.algorithm_name, 64).c_str(), "Sagitta",
                                                         detail::fit_text(options.algorithm_name + " " +
                                                                              options.algorithm_version, 64).c_str()),
        out, "device observer");
  check(report.addProcedureReported(CMR_CID100::ImagingProcedure), out, "procedure reported");

  // Image library: the source images, read up to their pixel data.
  check(report.getImageLibrary().createNewImageLibrary(), out, "image library");
  check(report.getImageLibrary().addImageGroup(), out, "image library group");
  std::set<std::string> seen;
  for (const auto& s : source.slices.front()) {
    if (!seen.insert(s.sop_instance_uid).second || s.path.empty()) continue;
    DcmFileFormat f;
    if (f.loadFileUntilTag(s.path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect, DCM_PixelData).bad())
      continue;  // the report still names the series; the library lists what could be read
    const OFCondition c = report.getImageLibrary().addImageEntry(*f.getDataset(), TID1600_ImageLibrary::withoutDescriptors);
    if (c.bad() && c != CMR_EC_NoImageLibraryEntryDescriptorsToBeAdded) check(c, out, "image library entry");
  }

  DSRCodedEntryValue intensity, intensity_unit;
  const bool with_intensity = intensity_concept(source.modality, intensity, intensity_unit);
  if (!with_intensity)
    result.notes.push_back(fmt::format("mean intensity not reported: no coded intensity concept for modality '{}'",
                                       source.modality));
  for (const auto& m : result.measurements) {
    const auto& d = *std::find_if(structures.begin(), structures.end(), [&](const SegmentDescription& s) { return s.label == m.label; });
    check(report.addVolumetricROIMeasurements(), out, "measurement group");
    auto& group = report.getVolumetricROIMeasurements();
    check(group.setTrackingIdentifier(detail::fit_text(m.name, 64).c_str()), out, "tracking identifier");
    check(group.setTrackingUniqueIdentifier(detail::new_uid(SITE_INSTANCE_UID_ROOT).c_str()), out, "tracking UID");
    check(group.setFinding(coded(d.type.empty() ? kTissue : d.type)), out, "finding");
    // DCMTK 3.6.7 accepts only the SOP classes it knows as segmentations: a LABELMAP SEG is named
    // as a Segmentation here and gets its own class back in the written dataset.
    DSRImageReferenceValue segment(kSegmentationStorage, seg.sop_instance_uid.c_str(), OFFalse);
    segment.getSegmentList().addItem(m.segment_number);
    check(group.setReferencedSegment(segment, OFFalse), out, "referenced segment");
    check(group.setSourceSeriesForSegmentation(source_series.c_str()), out, "source series");
    check(group.addMeasurement(DSRCodedEntryValue("118565006", "SCT", "Volume"),
                               CMR_TID1411_in_TID1500::MeasurementValue(number(m.volume_ml).c_str(),
                                                                        DSRCodedEntryValue("mL", "UCUM", "milliliter"))),
          out, "volume");
    if (with_intensity) {
      check(group.addMeasurement(intensity, CMR_TID1411_in_TID1500::MeasurementValue(number(m.mean).c_str(), intensity_unit),
                                 OFFalse),
            out, "mean intensity");
      check(group.getMeasurement().setDerivation(CMR_CID7464::Mean), out, "derivation");
    }
  }
  if (!report.isValid()) throw DicomError(out.string() + ": the measurement report is incomplete (a bug)");

  DSRDocument doc(DSRTypes::DT_EnhancedSR);
  check(doc.setTreeFromRootTemplate(report, OFTrue), out, "document tree");
  DcmFileFormat src;
  detail::source_dataset(src, source);
  check(doc.readStudyData(*src.getDataset()), out, "patient and study");
  doc.createNewSeries();
  check(doc.completeDocument(), out, "completion flag");
  check(doc.setSpecificCharacterSet("ISO_IR 192"), out, "character set");
  check(doc.setSeriesDescription(detail::fit_text(options.series_description, 64).c_str()), out, "series description");
  check(doc.setSeriesNumber(std::to_string(detail::derived_series_number(options.series_number, source, 1200)).c_str()),
        out, "series number");
  check(doc.setManufacturer("Sagitta"), out, "manufacturer");
  check(doc.setManufacturerModelName(detail::fit_text(options.algorithm_name, 64).c_str()), out, "model name");
  check(doc.setSoftwareVersions(detail::fit_text(options.software_version, 64).c_str()), out, "software versions");
  // Everything the report references: the SEG and the source images.
  OFString study;
  doc.getStudyInstanceUID(study);
  DcmItem& seg_ds = *seg.file.getDataset();
  OFString seg_study;
  seg_ds.findAndGetOFString(DCM_StudyInstanceUID, seg_study);
  check(doc.getCurrentRequestedProcedureEvidence().addItem(seg_study.empty() ? study : seg_study, seg.series_uid.c_str(),
                                                           seg.sop_class_uid.c_str(), seg.sop_instance_uid.c_str()),
        out, "evidence (SEG)");
  seen.clear();
  for (const auto& s : source.slices.front())
    if (seen.insert(s.sop_instance_uid).second)
      check(doc.getCurrentRequestedProcedureEvidence().addItem(study, source_series.c_str(), s.sop_class_uid.c_str(),
                                                               s.sop_instance_uid.c_str()),
            out, "evidence (source)");

  DcmFileFormat file;
  check(doc.write(*file.getDataset()), out, "write");
  if (seg.sop_class_uid != kSegmentationStorage)
    fix_referenced_class(*file.getDataset(), seg.sop_instance_uid, seg.sop_class_uid);
  detail::declare_utf8(*file.getDataset());
  detail::save_atomically(file, out);
  OFString uid;
  doc.getSOPInstanceUID(uid);
  result.sop_instance_uid = uid.c_str();
  doc.getSeriesInstanceUID(uid);
  result.series_instance_uid = uid.c_str();
  for (const auto& n : detail::source_repairs(source)) result.notes.push_back(n);
  return result;
}

}  // namespace sagitta::dicom

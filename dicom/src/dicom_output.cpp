// Shared by the writers of derived DICOM objects (SEG, Parametric Map, Secondary Capture): DS
// formatting, new UIDs, series numbering, content identification, and saving atomically (the
// declarations and their contract: dicom_output.h).
#include "dicom_output.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcvrpn.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmiod/iodcommn.h>
#include <dcmtk/dcmiod/iodmacro.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <ctime>
#include <set>
#include <vector>

#include "item_text.h"
#include "nesting.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/series_info.h"
#include "sagitta/dicom/text.h"

namespace sagitta::dicom::detail {
namespace fs = std::filesystem;

std::string fit_text(const std::string& text, std::size_t max_bytes) {
  std::string s = valid_utf8(text);
  if (s.size() <= max_bytes) return s;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return s.substr(0, cut);
}

std::string ds(double v) {
  if (std::abs(v) < 1e-12) return "0";
  for (int precision = 12; precision > 1; --precision) {
    std::string s = fmt::format("{:.{}g}", v, precision);
    if (s.size() <= 16) return s;
  }
  return fmt::format("{:.1g}", v);
}

std::string new_uid(const char* root) {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, root);
  return buf;
}

namespace {
std::tm now_tm() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm;
}
}  // namespace

std::string dicom_date() {
  const auto tm = now_tm();
  return fmt::format("{:04}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

std::string dicom_time() {
  const auto tm = now_tm();
  return fmt::format("{:02}{:02}{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void save_atomically(DcmFileFormat& file, const fs::path& out, int xfer) {
  try {
    check_output_file(out);
  } catch (const sagitta::Error& e) {
    throw DicomError(e.what());
  }
  const E_TransferSyntax ts = xfer < 0 ? EXS_LittleEndianExplicit : static_cast<E_TransferSyntax>(xfer);
  try {
    write_atomically(out, [&](const fs::path& tmp) {
      const OFCondition status = file.saveFile(tmp.c_str(), ts, EET_ExplicitLength, EGL_recalcGL, EPD_withoutPadding);
      if (status.bad()) throw DicomError(fmt::format("{}: cannot write ({})", out.string(), status.text()));
    });
  } catch (const fs::filesystem_error& e) {
    throw DicomError(fmt::format("{}: cannot write ({})", out.string(), e.code().message()));
  }
}

void check_on_source_grid(const itk::ImageBase<3>& image, const itk::ImageBase<3>& grid, const SeriesInfo& source,
                          const std::string& what) {
  const auto a = image.GetLargestPossibleRegion().GetSize();
  const auto b = grid.GetLargestPossibleRegion().GetSize();
  if (a != b)
    throw DicomError(fmt::format("{}: size {}x{}x{} does not match the source series ({}x{}x{})", what, a[0], a[1], a[2],
                                 b[0], b[1], b[2]));
  for (unsigned i = 0; i < 3; ++i) {
    if (std::abs(image.GetOrigin()[i] - grid.GetOrigin()[i]) > 1e-3 * std::max(1.0, grid.GetSpacing()[i]))
      throw DicomError(fmt::format("{}: origin ({:.3f}, {:.3f}, {:.3f}) differs from the source series' ({:.3f}, {:.3f}, "
                                   "{:.3f}); resample it onto the source grid first",
                                   what, image.GetOrigin()[0], image.GetOrigin()[1], image.GetOrigin()[2],
                                   grid.GetOrigin()[0], grid.GetOrigin()[1], grid.GetOrigin()[2]));
    if (std::abs(image.GetSpacing()[i] - grid.GetSpacing()[i]) > 1e-4 * grid.GetSpacing()[i])
      throw DicomError(fmt::format("{}: spacing {:.4f}x{:.4f}x{:.4f} differs from the source series' {:.4f}x{:.4f}x{:.4f}",
                                   what, image.GetSpacing()[0], image.GetSpacing()[1], image.GetSpacing()[2],
                                   grid.GetSpacing()[0], grid.GetSpacing()[1], grid.GetSpacing()[2]));
    for (unsigned j = 0; j < 3; ++j)
      if (std::abs(image.GetDirection()[i][j] - grid.GetDirection()[i][j]) > 1e-4)
        throw DicomError(fmt::format("{}: orientation differs from the source series'", what));
  }
  if (source.slices.empty() || source.slices.front().size() != b[2])
    throw DicomError(fmt::format("{}: the source series lists {} slices but its grid has {}", what,
                                 source.slices.empty() ? 0 : source.slices.front().size(), b[2]));
  for (const auto& s : source.slices.front())
    if (s.sop_instance_uid.empty() || s.sop_class_uid.empty())
      throw DicomError(fmt::format("{}: a source slice has no SOP Instance/Class UID", what));
}

namespace {
// The VRs whose bytes depend on the Specific Character Set.
bool is_text_vr(DcmEVR vr) {
  return vr == EVR_PN || vr == EVR_LO || vr == EVR_SH || vr == EVR_ST || vr == EVR_LT || vr == EVR_UT || vr == EVR_UC;
}

void put(DcmItem& item, const DcmTagKey& tag, const std::string& value) {
  item.putAndInsertString(DcmTag(tag), value.c_str());
}
}  // namespace

void declare_utf8(DcmItem& dataset) {
  bool non_ascii = false;
  DcmStack stack;
  while (!non_ascii && dataset.nextObject(stack, OFTrue).good()) {
    DcmObject* object = stack.top();
    if (!is_text_vr(object->ident())) continue;
    OFString value;
    static_cast<DcmElement*>(object)->getOFStringArray(value);
    for (std::size_t i = 0; i < value.length(); ++i) non_ascii |= static_cast<unsigned char>(value[i]) >= 0x80;
  }
  dataset.findAndDeleteElement(DCM_SpecificCharacterSet);
  if (non_ascii) dataset.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
}

namespace {

// A 128-bit FNV-1a of `text` as the decimal of a "2.25." UID (PS3.5 B.2).
std::string uid_from_text(const std::string& text) {
  std::uint64_t h[2] = {0xcbf29ce484222325ULL, 0x84222325cbf29ce4ULL};
  for (int k = 0; k < 2; ++k)
    for (const char c : text) {
      h[k] ^= static_cast<unsigned char>(c) + k;
      h[k] *= 0x100000001b3ULL;
    }
  // Long division of the 128-bit number by 10, on 32-bit limbs.
  std::uint32_t limbs[4] = {std::uint32_t(h[0] >> 32), std::uint32_t(h[0]), std::uint32_t(h[1] >> 32),
                            std::uint32_t(h[1])};
  limbs[0] &= 0x7fffffff;  // below 2^127: at most 39 digits
  std::string digits;
  for (;;) {
    bool zero = true;
    std::uint64_t rest = 0;
    for (auto& limb : limbs) {
      const std::uint64_t cur = (rest << 32) | limb;
      limb = static_cast<std::uint32_t>(cur / 10);
      rest = cur % 10;
      zero &= limb == 0;
    }
    digits.insert(digits.begin(), static_cast<char>('0' + rest));
    if (zero) break;
  }
  return "2.25." + digits;
}

// Every text element of `dataset` (nested ones too) converted to UTF-8 from the Specific Character
// Set in force for it (an item may declare its own), declared once as ISO_IR 192 when anything is
// outside ASCII.
void convert_to_utf8(DcmItem& dataset) {
  bool non_ascii = false;
  std::vector<DcmItem*> declaring;  // items with their own SpecificCharacterSet, emptied after
  DcmStack stack;
  while (dataset.nextObject(stack, OFTrue).good()) {
    DcmObject* object = stack.top();
    if (object->getTag() == DCM_SpecificCharacterSet && object->getParentItem() != &dataset)
      declaring.push_back(object->getParentItem());
    if (!is_text_vr(object->ident())) continue;
    auto* element = static_cast<DcmElement*>(object);
    OFString value;
    if (element->getOFStringArray(value).bad()) continue;
    const std::string raw(value.c_str(), value.length());
    DcmItem* scope = element->getParentItem();
    const std::string utf8 = to_utf8(raw, scope ? detail::charset_in_scope(*scope) : std::string());
    for (const char c : utf8) non_ascii |= static_cast<unsigned char>(c) >= 0x80;
    if (utf8 != raw) element->putOFStringArray(OFString(utf8.c_str(), utf8.size()));
  }
  for (DcmItem* item : declaring)
    if (item) item->findAndDeleteElement(DCM_SpecificCharacterSet);
  dataset.findAndDeleteElement(DCM_SpecificCharacterSet);
  if (non_ascii) dataset.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
}

}  // namespace

std::string stand_in_uid(const SeriesInfo& source, const std::string& what) {
  std::string text = "sagitta stand-in " + what;
  for (const auto& volume : source.slices)
    for (const auto& s : volume) text += "/" + s.sop_instance_uid;
  return uid_from_text(text);
}

std::vector<std::string> source_repairs(const SeriesInfo& source) {
  std::vector<std::string> notes;
  const char* why = "(derived from the source's SOP Instance UIDs, so every object made from this source agrees)";
  if (source.study_instance_uid.empty())
    notes.push_back("the source has no StudyInstanceUID; the derived object uses " + stand_in_uid(source, "study") +
                    " " + why);
  if (source.series_instance_uid.empty())
    notes.push_back("the source has no SeriesInstanceUID; it is referenced as " + stand_in_uid(source, "series") + " " +
                    why);
  if (source.frame_of_reference_uid.empty())
    notes.push_back("the source has no FrameOfReferenceUID; the derived object uses " +
                    stand_in_uid(source, "frame of reference") + " " + why);
  return notes;
}

void source_dataset(DcmFileFormat& out, const SeriesInfo& source) {
  bool loaded = false;
  for (const auto& volume : source.slices) {
    for (const auto& s : volume) {
      std::error_code ec;
      if (s.path.empty() || !fs::is_regular_file(s.path, ec) || !nesting_problem(s.path).empty()) continue;
      // Headers only: the pixel data of the source is never needed here.
      if ((loaded = out.loadFile(s.path.c_str(), EXS_Unknown, EGL_noChange, 4096).good())) break;
    }
    if (loaded) break;
  }
  DcmItem& d = *out.getDataset();
  if (!loaded) {
    out.clear();
    put(d, DCM_PatientName, source.patient_name);
    put(d, DCM_PatientID, source.patient_id);
    put(d, DCM_PatientBirthDate, source.patient_birth_date);
    put(d, DCM_PatientSex, source.patient_sex);
    put(d, DCM_StudyInstanceUID, source.study_instance_uid);
    put(d, DCM_StudyDate, source.study_date);
    put(d, DCM_StudyTime, source.study_time);
    put(d, DCM_StudyID, source.study_id);
    put(d, DCM_StudyDescription, source.study_description);
    put(d, DCM_AccessionNumber, source.accession_number);
    put(d, DCM_ReferringPhysicianName, source.referring_physician_name);
    if (!source.frame_of_reference_uid.empty()) put(d, DCM_FrameOfReferenceUID, source.frame_of_reference_uid);
    d.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");  // SeriesInfo's text is UTF-8
  }
  // Derived objects are UTF-8 throughout: Sagitta's own text (labels, descriptions) is UTF-8, and
  // one object has one character set.
  convert_to_utf8(d);
  // Anonymisers blank type 1 UIDs; a derived object must still have them (see source_repairs).
  OFString uid;
  if (d.findAndGetOFString(DCM_StudyInstanceUID, uid).bad() || uid.empty())
    put(d, DCM_StudyInstanceUID, stand_in_uid(source, "study"));
  if (!source.slices.empty() && (d.findAndGetOFString(DCM_FrameOfReferenceUID, uid).bad() || uid.empty()))
    put(d, DCM_FrameOfReferenceUID, stand_in_uid(source, "frame of reference"));
}

void copy_patient_study(DcmItem& item, const SeriesInfo& source) {
  DcmFileFormat file;
  source_dataset(file, source);
  DcmItem& d = *file.getDataset();
  // Patient module, general study module, patient study module, frame of reference module.
  static const DcmTagKey tags[] = {
      DCM_SpecificCharacterSet, DCM_PatientName, DCM_PatientID, DCM_IssuerOfPatientID, DCM_PatientBirthDate,
      DCM_PatientSex, DCM_PatientAge, DCM_PatientWeight, DCM_PatientSize, DCM_StudyInstanceUID, DCM_StudyDate,
      DCM_StudyTime, DCM_StudyID, DCM_StudyDescription, DCM_AccessionNumber, DCM_ReferringPhysicianName,
      DCM_FrameOfReferenceUID, DCM_PositionReferenceIndicator};
  for (const auto& tag : tags) {
    DcmElement* e = nullptr;
    if (d.findAndGetElement(tag, e).good() && e) {
      // An empty Specific Character Set (type 1C) is invalid; absent means the default repertoire.
      if (tag == DCM_SpecificCharacterSet && e->getLength() == 0) {
        item.findAndDeleteElement(tag);
        continue;
      }
      item.findAndDeleteElement(tag);
      item.insert(static_cast<DcmElement*>(e->clone()), true);
    }
  }
  // Type 2 attributes of those modules must be present, even empty.
  for (const auto& tag : {DCM_PatientName, DCM_PatientID, DCM_PatientBirthDate, DCM_PatientSex, DCM_StudyDate,
                          DCM_StudyTime, DCM_StudyID, DCM_AccessionNumber, DCM_ReferringPhysicianName})
    if (!item.tagExists(tag)) item.insertEmptyElement(DcmTag(tag));
  if (item.tagExists(DCM_FrameOfReferenceUID) && !item.tagExists(DCM_PositionReferenceIndicator))
    item.insertEmptyElement(DcmTag(DCM_PositionReferenceIndicator));
}

void put_referenced_series(DcmItem& item, const SeriesInfo& source) {
  item.findAndDeleteElement(DCM_ReferencedSeriesSequence);
  DcmItem* series = nullptr;
  item.findOrCreateSequenceItem(DCM_ReferencedSeriesSequence, series, 0);
  put(*series, DCM_SeriesInstanceUID,
      source.series_instance_uid.empty() ? stand_in_uid(source, "series") : source.series_instance_uid);
  std::set<std::string> seen;
  long n = 0;
  for (const auto& volume : source.slices)
    for (const auto& s : volume) {
      if (!seen.insert(s.sop_instance_uid).second) continue;
      DcmItem* ref = nullptr;
      series->findOrCreateSequenceItem(DCM_ReferencedInstanceSequence, ref, n++);
      put(*ref, DCM_ReferencedSOPClassUID, s.sop_class_uid);
      put(*ref, DCM_ReferencedSOPInstanceUID, s.sop_instance_uid);
    }
}

std::vector<int> segment_index_of_labels(const LabelMap& labels, const std::vector<SegmentDescription>& segments,
                                         const std::string& what, std::vector<bool>* present_out) {
  std::vector<int> index(65536, -1);
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].label <= 0 || segments[i].label > 65535)
      throw DicomError(fmt::format("{}: segment '{}' has label value {}; values are 1..65535", what, segments[i].name,
                                   segments[i].label));
    if (index[segments[i].label] >= 0)
      throw DicomError(fmt::format("{}: label value {} is described twice", what, segments[i].label));
    index[segments[i].label] = static_cast<int>(i);
  }
  std::vector<bool> present(65536, false);
  const std::uint16_t* v = labels.GetBufferPointer();
  const std::size_t n = labels.GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) present[v[i]] = true;
  for (int value = 1; value < 65536; ++value)
    if (present[value] && index[value] < 0)
      throw DicomError(fmt::format("{}: the label map has value {} but no segment describes it", what, value));
  if (present_out) *present_out = std::move(present);
  return index;
}

int derived_series_number(int requested, const SeriesInfo& source, int offset) {
  if (requested > 0) return requested;
  try {
    return std::stoi(source.series_number) + offset;
  } catch (...) {
    return offset;
  }
}

void set_content_identification(ContentIdentificationMacro& content, const std::string& label,
                                const std::string& description, const std::string& algorithm_name) {
  content.setInstanceNumber("1");
  content.setContentLabel(label);
  content.setContentDescription(fit_text(description, 64), false);
  content.setContentCreatorName("Sagitta^" + fit_text(algorithm_name, 50), false);
}

DerivedUids save_iod(DcmIODCommon& iod, const std::function<void(DcmItem&)>& write, const SeriesInfo& source,
                     const fs::path& out) {
  DcmFileFormat file;
  DcmDataset& dataset = *file.getDataset();
  // dcmiod checks text values against the dataset's character set while writing: declare UTF-8
  // first (declare_utf8 below settles it).
  dataset.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 192");
  write(dataset);
  copy_patient_study(dataset, source);
  put_referenced_series(dataset, source);
  declare_utf8(dataset);
  save_atomically(file, out);

  DerivedUids uids;
  OFString uid;
  iod.getSOPCommon().getSOPInstanceUID(uid);
  uids.sop_instance_uid = uid.c_str();
  iod.getSeries().getSeriesInstanceUID(uid);
  uids.series_instance_uid = uid.c_str();
  uids.notes = source_repairs(source);
  return uids;
}

}  // namespace sagitta::dicom::detail

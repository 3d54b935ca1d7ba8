// Secondary Capture with dcmdata: dcmiod has no SC IOD class, and the IOD is small.
#include "sagitta/dicom/secondary_capture.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fmt/format.h>

#include "dicom_output.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"

namespace sagitta::dicom {

SecondaryCaptureResult write_secondary_capture(const RgbPicture& picture, const SeriesInfo& source,
                                               const std::filesystem::path& out, const SecondaryCaptureOptions& options) {
  register_codecs();
  if (picture.width <= 0 || picture.height <= 0 || picture.width > 65535 || picture.height > 65535)
    throw DicomError(fmt::format("{}: picture size {}x{} is not a valid image size", out.string(), picture.width,
                                 picture.height));
  if (picture.rgb.size() != static_cast<std::size_t>(picture.width) * picture.height * 3)
    throw DicomError(fmt::format("{}: {} bytes of RGB for a {}x{} picture", out.string(), picture.rgb.size(), picture.width,
                                 picture.height));

  DcmFileFormat file;
  DcmDataset& d = *file.getDataset();
  detail::copy_patient_study(d, source);
  d.findAndDeleteElement(DCM_FrameOfReferenceUID);  // not part of the SC image IOD
  d.findAndDeleteElement(DCM_PositionReferenceIndicator);
  SecondaryCaptureResult r;
  r.sop_instance_uid = detail::new_uid(SITE_INSTANCE_UID_ROOT);
  r.series_instance_uid =
      options.series_instance_uid.empty() ? detail::new_uid(SITE_SERIES_UID_ROOT) : options.series_instance_uid;
  const int series_number = detail::derived_series_number(options.series_number, source, 3000);
  const std::string date = detail::dicom_date(), time = detail::dicom_time();
  auto put = [&](const DcmTagKey& tag, const std::string& v) {
    if (d.putAndInsertString(DcmTag(tag), v.c_str()).bad())
      throw DicomError(fmt::format("{}: cannot set {}", out.string(), DcmTag(tag).getTagName()));
  };
  put(DCM_SOPClassUID, UID_SecondaryCaptureImageStorage);
  put(DCM_SOPInstanceUID, r.sop_instance_uid);
  // General series; "OT": the picture is not an image of any acquisition modality.
  put(DCM_Modality, "OT");
  put(DCM_SeriesInstanceUID, r.series_instance_uid);
  put(DCM_SeriesNumber, std::to_string(series_number));
  put(DCM_SeriesDescription, detail::fit_text(options.series_description, 64));
  put(DCM_SeriesDate, date);
  put(DCM_SeriesTime, time);
  d.insertEmptyElement(DCM_Laterality);  // type 2C: unknown for a picture of a whole slice
  // SC equipment: a workstation made it.
  put(DCM_ConversionType, "WSD");
  put(DCM_Manufacturer, "Sagitta");
  put(DCM_SoftwareVersions, detail::fit_text(options.software_version, 64));
  // General image.
  put(DCM_InstanceNumber, std::to_string(options.instance_number));
  d.insertEmptyElement(DCM_PatientOrientation);
  put(DCM_ContentDate, date);
  put(DCM_ContentTime, time);
  put(DCM_ImageType, "DERIVED\\SECONDARY");
  put(DCM_BurnedInAnnotation, "NO");
  if (!options.comment.empty()) put(DCM_ImageComments, options.comment);
  if (options.source_slice >= 0 && !source.slices.empty() &&
      static_cast<std::size_t>(options.source_slice) < source.slices.front().size()) {
    const auto& s = source.slices.front()[static_cast<std::size_t>(options.source_slice)];
    DcmItem* ref = nullptr;
    d.findOrCreateSequenceItem(DCM_SourceImageSequence, ref, 0);
    ref->putAndInsertString(DCM_ReferencedSOPClassUID, s.sop_class_uid.c_str());
    ref->putAndInsertString(DCM_ReferencedSOPInstanceUID, s.sop_instance_uid.c_str());
    if (s.frame > 0) ref->putAndInsertString(DCM_ReferencedFrameNumber, std::to_string(s.frame).c_str());
  }
  // Image pixel: RGB, 8 bits, interleaved.
  d.putAndInsertUint16(DCM_SamplesPerPixel, 3);
  put(DCM_PhotometricInterpretation, "RGB");
  d.putAndInsertUint16(DCM_PlanarConfiguration, 0);
  d.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(picture.height));
  d.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(picture.width));
  d.putAndInsertUint16(DCM_BitsAllocated, 8);
  d.putAndInsertUint16(DCM_BitsStored, 8);
  d.putAndInsertUint16(DCM_HighBit, 7);
  d.putAndInsertUint16(DCM_PixelRepresentation, 0);
  put(DCM_LossyImageCompression, "00");
  if (d.putAndInsertUint8Array(DCM_PixelData, picture.rgb.data(), static_cast<unsigned long>(picture.rgb.size())).bad())
    throw DicomError(out.string() + ": cannot set the pixel data");
  detail::declare_utf8(d);
  detail::save_atomically(file, out);
  r.notes = detail::source_repairs(source);
  return r;
}

}  // namespace sagitta::dicom

#include "support/synthetic_dicom.h"

#include <dcmtk/config/osconfig.h>  // must come first for DCMTK
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcrleerg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>
#include <sstream>
#include <stdexcept>

namespace sagitta::testing {
namespace fs = std::filesystem;

namespace {

using Vec = std::array<double, 3>;

Vec normalised(const Vec& v) {
  const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
  if (n == 0.0) throw std::invalid_argument("synthetic DICOM: zero-length direction");
  return {v[0] / n, v[1] / n, v[2] / n};
}

Vec cross(const Vec& a, const Vec& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double dot(const Vec& a, const Vec& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

// A decimal string (DS) of at most 16 characters, as precise as that allows.
std::string ds(double v) {
  if (std::abs(v) < 1e-13) v = 0.0;  // no "-0" and no "1e-17" from rounding noise
  char buf[64];
  for (int precision = 16; precision > 0; --precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::string(buf).size() <= 16) return buf;
  }
  throw std::invalid_argument("synthetic DICOM: value not representable as DS");
}

template <std::size_t N>
std::string ds_multi(const std::array<double, N>& values) {
  std::string s;
  for (std::size_t i = 0; i < N; ++i) {
    if (i) s += '\\';
    s += ds(values[i]);
  }
  return s;
}

std::string new_uid(const char* root) {
  char buf[100];
  dcmGenerateUniqueIdentifier(buf, root);
  return buf;
}

void check(const OFCondition& cond, const std::string& what) {
  if (cond.bad()) throw std::runtime_error("synthetic DICOM: " + what + ": " + cond.text());
}

// TM for 10:00:00 plus `seconds`.
std::string tm_string(double seconds) {
  const double total = 10 * 3600.0 + seconds;
  const int h = static_cast<int>(total / 3600);
  const int m = static_cast<int>((total - h * 3600) / 60);
  const double s = total - h * 3600 - m * 60;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d%02d%09.6f", h, m, s);
  return buf;
}

const char* const kStudyDate = "20240102";
const char* const kCtImageStorage = "1.2.840.10008.5.1.4.1.1.2";
const char* const kMrImageStorage = "1.2.840.10008.5.1.4.1.1.4";
const char* const kEnhancedCtImageStorage = "1.2.840.10008.5.1.4.1.1.2.1";
const char* const kEnhancedMrImageStorage = "1.2.840.10008.5.1.4.1.1.4.1";

E_TransferSyntax transfer_syntax(const std::string& uid) {
  if (uid == "1.2.840.10008.1.2") return EXS_LittleEndianImplicit;
  if (uid == "1.2.840.10008.1.2.1") return EXS_LittleEndianExplicit;
  if (uid == "1.2.840.10008.1.2.2") return EXS_BigEndianExplicit;
  if (uid == "1.2.840.10008.1.2.1.99") return EXS_DeflatedLittleEndianExplicit;
  if (uid == "1.2.840.10008.1.2.5") return EXS_RLELossless;
  throw std::invalid_argument("synthetic DICOM: unsupported transfer syntax " + uid +
                              " (implicit/explicit little, big endian, deflate and RLE are)");
}

struct StoredRange {
  long min = 0, max = 0;
};

StoredRange stored_range(const SeriesSpec& spec) {
  const int bits = spec.bits_stored > 0 ? spec.bits_stored : spec.bits_allocated;
  if (spec.pixel_signed) return {-(1L << (bits - 1)), (1L << (bits - 1)) - 1};
  return {0, (1L << bits) - 1};
}

// FNV-1a followed by a splitmix64 finaliser, so that UIDs differing in their last digits get
// names in no particular order.
std::uint64_t name_hash(const std::string& s) {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// The stored pixel values of one plane, in the order DICOM stores them (rows of columns).
std::vector<std::uint16_t> plane_pixels(const SeriesSpec& spec, int k, int time_point) {
  const StoredRange range = stored_range(spec);
  std::vector<std::uint16_t> out(static_cast<std::size_t>(spec.rows) * spec.columns);
  for (int j = 0; j < spec.rows; ++j) {
    for (int i = 0; i < spec.columns; ++i) {
      const double v = value_at(spec, voxel_centre(spec, i, j, k), time_point);
      const double s_exact = (v - spec.rescale_intercept) / spec.rescale_slope;
      const long s = std::lround(s_exact);
      if (std::abs(s * spec.rescale_slope + spec.rescale_intercept - v) >
          1e-6 * std::max(1.0, std::abs(v)))
        throw std::invalid_argument("synthetic DICOM: value " + std::to_string(v) +
                                    " is not a whole number of rescale slopes from the intercept");
      if (s < range.min || s > range.max)
        throw std::invalid_argument("synthetic DICOM: value " + std::to_string(v) +
                                    " does not fit the stored pixel range");
      const long written = spec.monochrome1 ? range.min + range.max - s : s;
      out[static_cast<std::size_t>(j) * spec.columns + i] =
          static_cast<std::uint16_t>(static_cast<std::int64_t>(written) & 0xFFFF);
    }
  }
  return out;
}

std::vector<std::string> split_backslash(const std::string& s) {
  std::vector<std::string> parts;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, '\\')) parts.push_back(part);
  return parts;
}

struct Uids {
  std::string study, series, frame_of_reference;
};

// Patient, study, series, frame of reference, equipment and image pixel description shared by
// single-frame and multi-frame instances.
void put_common(DcmItem& ds, const SeriesSpec& spec, const Uids& uids, const std::string& sop_class,
                const std::string& sop_instance) {
  const bool ct = spec.modality == "CT";
  check(ds.putAndInsertString(DCM_SpecificCharacterSet, "ISO_IR 100"), "SpecificCharacterSet");
  check(ds.putAndInsertString(DCM_SOPClassUID, sop_class.c_str()), "SOPClassUID");
  check(ds.putAndInsertString(DCM_SOPInstanceUID, sop_instance.c_str()), "SOPInstanceUID");
  // Patient
  check(ds.putAndInsertString(DCM_PatientName, spec.patient_name.c_str()), "PatientName");
  check(ds.putAndInsertString(DCM_PatientID, spec.patient_id.c_str()), "PatientID");
  check(ds.putAndInsertString(DCM_PatientBirthDate, "19700101"), "PatientBirthDate");
  check(ds.putAndInsertString(DCM_PatientSex, "O"), "PatientSex");
  // General study
  check(ds.putAndInsertString(DCM_StudyInstanceUID, uids.study.c_str()), "StudyInstanceUID");
  check(ds.putAndInsertString(DCM_StudyDate, kStudyDate), "StudyDate");
  check(ds.putAndInsertString(DCM_StudyTime, "100000"), "StudyTime");
  check(ds.putAndInsertString(DCM_ReferringPhysicianName, ""), "ReferringPhysicianName");
  check(ds.putAndInsertString(DCM_StudyID, spec.study_id.c_str()), "StudyID");
  check(ds.putAndInsertString(DCM_AccessionNumber, ""), "AccessionNumber");
  check(ds.putAndInsertString(DCM_StudyDescription, spec.study_description.c_str()),
        "StudyDescription");
  // General series
  check(ds.putAndInsertString(DCM_Modality, spec.modality.c_str()), "Modality");
  check(ds.putAndInsertString(DCM_SeriesInstanceUID, uids.series.c_str()), "SeriesInstanceUID");
  check(ds.putAndInsertString(DCM_SeriesNumber, std::to_string(spec.series_number).c_str()),
        "SeriesNumber");
  check(ds.putAndInsertString(DCM_SeriesDescription, spec.series_description.c_str()),
        "SeriesDescription");
  check(ds.putAndInsertString(DCM_SeriesDate, kStudyDate), "SeriesDate");
  check(ds.putAndInsertString(DCM_SeriesTime, "100000"), "SeriesTime");
  check(ds.putAndInsertString(DCM_PatientPosition, "HFS"), "PatientPosition");
  check(ds.putAndInsertString(DCM_BodyPartExamined, "CHEST"), "BodyPartExamined");
  // Frame of reference
  check(ds.putAndInsertString(DCM_FrameOfReferenceUID, uids.frame_of_reference.c_str()),
        "FrameOfReferenceUID");
  check(ds.putAndInsertString(DCM_PositionReferenceIndicator, ""), "PositionReferenceIndicator");
  // Equipment
  check(ds.putAndInsertString(DCM_Manufacturer, "Sagitta"), "Manufacturer");
  check(ds.putAndInsertString(DCM_ManufacturerModelName, "Synthetic"), "ManufacturerModelName");
  check(ds.putAndInsertString(DCM_DeviceSerialNumber, "0001"), "DeviceSerialNumber");
  check(ds.putAndInsertString(DCM_SoftwareVersions, "sagitta-tests"), "SoftwareVersions");
  check(ds.putAndInsertString(DCM_InstitutionName, "Sagitta"), "InstitutionName");
  // Acquisition
  if (ct && sop_class == kCtImageStorage) {
    check(ds.putAndInsertString(DCM_KVP, "120"), "KVP");
  } else if (spec.modality == "MR") {
    check(ds.putAndInsertString(DCM_ScanningSequence, "GR"), "ScanningSequence");
    check(ds.putAndInsertString(DCM_SequenceVariant, "NONE"), "SequenceVariant");
    check(ds.putAndInsertString(DCM_ScanOptions, ""), "ScanOptions");
    check(ds.putAndInsertString(DCM_MRAcquisitionType, "2D"), "MRAcquisitionType");
    check(ds.putAndInsertString(DCM_RepetitionTime, "500"), "RepetitionTime");
    check(ds.putAndInsertString(DCM_EchoTime, "10"), "EchoTime");
    check(ds.putAndInsertString(DCM_EchoTrainLength, "1"), "EchoTrainLength");
    check(ds.putAndInsertString(DCM_MagneticFieldStrength, "3"), "MagneticFieldStrength");
  }
  // Image pixel
  const int bits_stored = spec.bits_stored > 0 ? spec.bits_stored : spec.bits_allocated;
  check(ds.putAndInsertUint16(DCM_SamplesPerPixel, 1), "SamplesPerPixel");
  check(ds.putAndInsertString(DCM_PhotometricInterpretation,
                              spec.monochrome1 ? "MONOCHROME1" : "MONOCHROME2"),
        "PhotometricInterpretation");
  check(ds.putAndInsertUint16(DCM_Rows, static_cast<Uint16>(spec.rows)), "Rows");
  check(ds.putAndInsertUint16(DCM_Columns, static_cast<Uint16>(spec.columns)), "Columns");
  check(ds.putAndInsertUint16(DCM_BitsAllocated, static_cast<Uint16>(spec.bits_allocated)),
        "BitsAllocated");
  check(ds.putAndInsertUint16(DCM_BitsStored, static_cast<Uint16>(bits_stored)), "BitsStored");
  check(ds.putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(bits_stored - 1)), "HighBit");
  check(ds.putAndInsertUint16(DCM_PixelRepresentation, spec.pixel_signed ? 1 : 0),
        "PixelRepresentation");
  check(ds.putAndInsertString(DCM_BurnedInAnnotation, "NO"), "BurnedInAnnotation");
  check(ds.putAndInsertString(DCM_LossyImageCompression, "00"), "LossyImageCompression");
}

void put_pixels(DcmItem& ds, const SeriesSpec& spec, const std::vector<std::uint16_t>& pixels) {
  if (spec.bits_allocated == 16) {
    check(ds.putAndInsertUint16Array(DCM_PixelData, pixels.data(), pixels.size()), "PixelData");
  } else {
    std::vector<Uint8> bytes(pixels.size());
    for (std::size_t n = 0; n < pixels.size(); ++n) bytes[n] = static_cast<Uint8>(pixels[n] & 0xFF);
    check(ds.putAndInsertUint8Array(DCM_PixelData, bytes.data(), bytes.size()), "PixelData");
  }
}

void save(DcmFileFormat& file, const fs::path& path, const std::string& transfer_syntax_uid) {
  const E_TransferSyntax xfer = transfer_syntax(transfer_syntax_uid);
  if (xfer == EXS_RLELossless) {
    static std::once_flag once;
    std::call_once(once, [] { DcmRLEEncoderRegistration::registerCodecs(); });
    check(file.getDataset()->chooseRepresentation(xfer, nullptr), "RLE encoding");
  }
  check(file.saveFile(path.string().c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange,
                      0, 0, EWM_createNewMeta),
        "writing " + path.string());
}

void validate(const SeriesSpec& spec) {
  if (spec.rows <= 0 || spec.columns <= 0 || spec.slices <= 0 || spec.rows > 65535 ||
      spec.columns > 65535)
    throw std::invalid_argument("synthetic DICOM: rows, columns and slices must be positive");
  if (spec.bits_allocated != 8 && spec.bits_allocated != 16)
    throw std::invalid_argument("synthetic DICOM: bits_allocated must be 8 or 16");
  if (spec.bits_stored < 0 || spec.bits_stored > spec.bits_allocated)
    throw std::invalid_argument("synthetic DICOM: bits_stored must be in [1, bits_allocated]");
  if (spec.time_points < 1) throw std::invalid_argument("synthetic DICOM: time_points must be >= 1");
  if (spec.rescale_slope == 0.0) throw std::invalid_argument("synthetic DICOM: rescale slope 0");
  if (spec.pixel_spacing[0] <= 0 || spec.pixel_spacing[1] <= 0 || spec.slice_spacing <= 0)
    throw std::invalid_argument("synthetic DICOM: spacings must be positive");
}

// The CT-specific functional groups an Enhanced CT Image needs (shared by all frames):
// anatomy, irradiation event, acquisition type and details, table dynamics, position,
// geometry, reconstruction, exposure and X-ray details.
void put_enhanced_ct_groups(DcmItem& shared, const SeriesSpec& spec, const Vec& normal) {
  DcmItem* item = nullptr;
  DcmItem* sub = nullptr;
  const auto put = [&](DcmItem* where, const DcmTagKey& key, const std::string& value) {
    check(where->putAndInsertString(DcmTag(key), value.c_str()), DcmTag(key).getTagName());
  };
  const auto group = [&](const DcmTagKey& key) {
    check(shared.findOrCreateSequenceItem(key, item, 0), DcmTag(key).getTagName());
    return item;
  };
  group(DCM_FrameAnatomySequence);
  put(item, DCM_FrameLaterality, "U");
  check(item->findOrCreateSequenceItem(DCM_AnatomicRegionSequence, sub, 0), "AnatomicRegion");
  put(sub, DCM_CodeValue, "43799004");
  put(sub, DCM_CodingSchemeDesignator, "SCT");
  put(sub, DCM_CodeMeaning, "Thorax");
  group(DCM_IrradiationEventIdentificationSequence);
  put(item, DCM_IrradiationEventUID, new_uid(SITE_INSTANCE_UID_ROOT));
  group(DCM_CTAcquisitionTypeSequence);
  put(item, DCM_AcquisitionType, "SEQUENCED");
  put(item, DCM_ConstantVolumeFlag, "NO");
  put(item, DCM_FluoroscopyFlag, "NO");
  group(DCM_CTAcquisitionDetailsSequence);
  put(item, DCM_DataCollectionDiameter, "500");
  put(item, DCM_RevolutionTime, "1");
  put(item, DCM_SingleCollimationWidth, "0.625");
  put(item, DCM_TotalCollimationWidth, "40");
  put(item, DCM_TableHeight, "150");
  put(item, DCM_GantryDetectorTilt, ds(spec.gantry_tilt_degrees));
  put(item, DCM_RotationDirection, "CW");
  group(DCM_CTTableDynamicsSequence);  // a sequenced (step and shoot) acquisition: table still
  group(DCM_CTPositionSequence);
  const Point centre = voxel_centre(spec, (spec.columns - 1) / 2.0, (spec.rows - 1) / 2.0,
                                    (spec.slices - 1) / 2.0);
  put(item, DCM_TablePosition, ds(dot(centre, normal)));
  put(item, DCM_ReconstructionTargetCenterPatient, ds_multi(centre));
  put(item, DCM_DataCollectionCenterPatient, ds_multi(centre));
  group(DCM_CTGeometrySequence);
  put(item, DCM_DistanceSourceToDetector, "1000");
  put(item, DCM_DistanceSourceToDataCollectionCenter, "500");
  group(DCM_CTReconstructionSequence);
  put(item, DCM_ReconstructionAlgorithm, "FILTER_BACK_PROJ");
  put(item, DCM_ConvolutionKernel, "STANDARD");
  put(item, DCM_ConvolutionKernelGroup, "SOFT_TISSUE");
  put(item, DCM_ReconstructionDiameter,
      ds(std::max(spec.rows * spec.pixel_spacing[0], spec.columns * spec.pixel_spacing[1])));
  put(item, DCM_ReconstructionPixelSpacing, ds_multi(spec.pixel_spacing));
  put(item, DCM_ReconstructionAngle, "360");
  put(item, DCM_ImageFilter, "NONE");
  group(DCM_CTExposureSequence);
  put(item, DCM_ExposureTimeInms, "1000");
  put(item, DCM_XRayTubeCurrentInmA, "200");
  put(item, DCM_ExposureInmAs, "200");
  put(item, DCM_ExposureModulationType, "NONE");
  group(DCM_CTXRayDetailsSequence);
  put(item, DCM_KVP, "120");
  put(item, DCM_FocalSpots, "1");
  put(item, DCM_FilterType, "NONE");
  put(item, DCM_FilterMaterial, "ALUMINUM");
}

struct PlaneToWrite {
  int slice = 0, time_point = 0;
  Point position{};
};

}  // namespace

std::array<double, 3> row_direction(const SeriesSpec& spec) {
  return normalised({spec.orientation[0], spec.orientation[1], spec.orientation[2]});
}

std::array<double, 3> column_direction(const SeriesSpec& spec) {
  return normalised({spec.orientation[3], spec.orientation[4], spec.orientation[5]});
}

std::array<double, 3> normal_direction(const SeriesSpec& spec) {
  return normalised(cross(row_direction(spec), column_direction(spec)));
}

std::array<double, 3> slice_direction(const SeriesSpec& spec) {
  const auto& d = spec.slice_direction;
  if (d[0] == 0.0 && d[1] == 0.0 && d[2] == 0.0) return normal_direction(spec);
  return normalised(d);
}

Point voxel_centre(const SeriesSpec& spec, double i, double j, double k) {
  const Vec r = row_direction(spec), c = column_direction(spec), d = slice_direction(spec);
  Point p{};
  for (int a = 0; a < 3; ++a)
    p[a] = spec.first_position[a] + k * spec.slice_spacing * d[a] +
           i * spec.pixel_spacing[1] * r[a] + j * spec.pixel_spacing[0] * c[a];
  return p;
}

double value_at(const SeriesSpec& spec, const Point& p, int time_point) {
  double v = spec.background;
  for (const Marker& m : spec.markers) {
    if (m.time_point >= 0 && m.time_point != time_point) continue;
    const bool ellipsoid = m.semi_axes[0] > 0 || m.semi_axes[1] > 0 || m.semi_axes[2] > 0;
    double q = 0.0;
    for (int a = 0; a < 3; ++a) {
      const double scale = ellipsoid ? m.semi_axes[a] : m.radius;
      if (scale <= 0) {
        q = 2.0;  // a degenerate axis holds nothing
        break;
      }
      const double t = (p[a] - m.lps[a]) / scale;
      q += t * t;
    }
    // A little slack so that voxel centres exactly on the surface (ties such as a radius that
    // is a whole number of spacings) are inside on every side, whatever the rounding.
    if (q <= 1.0 + 1e-9) v = m.value;
  }
  return v;
}

double value_at(const SeriesSpec& spec, const Point& p) { return value_at(spec, p, 0); }

WrittenSeries write_series_detailed(const SeriesSpec& spec, const fs::path& folder) {
  validate(spec);
  (void)transfer_syntax(spec.transfer_syntax);  // reject unsupported syntaxes before writing
  fs::create_directories(folder);

  WrittenSeries out;
  out.study_instance_uid =
      spec.study_instance_uid.empty() ? new_uid(SITE_STUDY_UID_ROOT) : spec.study_instance_uid;
  out.series_instance_uid =
      spec.series_instance_uid.empty() ? new_uid(SITE_SERIES_UID_ROOT) : spec.series_instance_uid;
  out.frame_of_reference_uid = spec.frame_of_reference_uid.empty()
                                   ? new_uid(SITE_INSTANCE_UID_ROOT)
                                   : spec.frame_of_reference_uid;
  const Uids uids{out.study_instance_uid, out.series_instance_uid, out.frame_of_reference_uid};

  std::vector<PlaneToWrite> planes;
  for (int t = 0; t < spec.time_points; ++t)
    for (int k = 0; k < spec.slices; ++k)
      if (std::find(spec.skip_slices.begin(), spec.skip_slices.end(), k) == spec.skip_slices.end())
        planes.push_back({k, t, voxel_centre(spec, 0, 0, k)});
  if (planes.empty()) throw std::invalid_argument("synthetic DICOM: every slice is skipped");

  const Vec normal = normal_direction(spec);
  const bool ct = spec.modality == "CT";
  const std::string iop = ds_multi(spec.orientation);
  const std::string pixel_spacing = ds_multi(spec.pixel_spacing);
  const std::string window_center = ds(spec.background + 500), window_width = "2000";

  if (!spec.multiframe) {
    const int n = static_cast<int>(planes.size());
    for (int idx = 0; idx < n; ++idx) {
      const PlaneToWrite& plane = planes[idx];
      const std::string sop_instance = new_uid(SITE_INSTANCE_UID_ROOT);
      DcmFileFormat file;
      DcmDataset& ds_ = *file.getDataset();
      put_common(ds_, spec, uids, ct ? kCtImageStorage : kMrImageStorage, sop_instance);
      const double seconds = 10.0 * plane.time_point;
      check(ds_.putAndInsertString(DCM_ImageType, spec.image_type.c_str()), "ImageType");
      check(ds_.putAndInsertString(DCM_ContentDate, kStudyDate), "ContentDate");
      check(ds_.putAndInsertString(DCM_ContentTime, tm_string(seconds).c_str()), "ContentTime");
      check(ds_.putAndInsertString(DCM_AcquisitionDate, kStudyDate), "AcquisitionDate");
      check(ds_.putAndInsertString(DCM_AcquisitionTime, tm_string(seconds).c_str()),
            "AcquisitionTime");
      check(ds_.putAndInsertString(DCM_AcquisitionNumber,
                                   std::to_string(plane.time_point + 1).c_str()),
            "AcquisitionNumber");
      const int instance_number = spec.shuffle_file_names ? n - idx : idx + 1;
      check(ds_.putAndInsertString(DCM_InstanceNumber, std::to_string(instance_number).c_str()),
            "InstanceNumber");
      if (spec.time_points > 1) {
        check(ds_.putAndInsertString(DCM_TemporalPositionIdentifier,
                                     std::to_string(plane.time_point + 1).c_str()),
              "TemporalPositionIdentifier");
        check(ds_.putAndInsertString(DCM_NumberOfTemporalPositions,
                                     std::to_string(spec.time_points).c_str()),
              "NumberOfTemporalPositions");
      }
      check(ds_.putAndInsertString(DCM_SliceThickness, ds(spec.slice_spacing).c_str()),
            "SliceThickness");
      if (ct)
        check(ds_.putAndInsertString(DCM_GantryDetectorTilt, ds(spec.gantry_tilt_degrees).c_str()),
              "GantryDetectorTilt");
      check(ds_.putAndInsertString(DCM_ImagePositionPatient, ds_multi(plane.position).c_str()),
            "ImagePositionPatient");
      check(ds_.putAndInsertString(DCM_ImageOrientationPatient, iop.c_str()),
            "ImageOrientationPatient");
      check(ds_.putAndInsertString(DCM_SliceLocation, ds(dot(plane.position, normal)).c_str()),
            "SliceLocation");
      check(ds_.putAndInsertString(DCM_PixelSpacing, pixel_spacing.c_str()), "PixelSpacing");
      check(ds_.putAndInsertString(DCM_RescaleIntercept, ds(spec.rescale_intercept).c_str()),
            "RescaleIntercept");
      check(ds_.putAndInsertString(DCM_RescaleSlope, ds(spec.rescale_slope).c_str()),
            "RescaleSlope");
      if (ct) check(ds_.putAndInsertString(DCM_RescaleType, "HU"), "RescaleType");
      check(ds_.putAndInsertString(DCM_WindowCenter, window_center.c_str()), "WindowCenter");
      check(ds_.putAndInsertString(DCM_WindowWidth, window_width.c_str()), "WindowWidth");
      put_pixels(ds_, spec, plane_pixels(spec, plane.slice, plane.time_point));

      std::string name;
      if (spec.shuffle_file_names) {
        char hex[17];
        std::snprintf(hex, sizeof hex, "%016llx",
                      static_cast<unsigned long long>(name_hash(sop_instance)));
        name = spec.file_prefix + "_" + hex;  // no extension, order unrelated to position
      } else if (spec.time_points > 1) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "_t%02d_%04d.dcm", plane.time_point, plane.slice);
        name = spec.file_prefix + buf;
      } else {
        char buf[32];
        std::snprintf(buf, sizeof buf, "_%04d.dcm", plane.slice);
        name = spec.file_prefix + buf;
      }
      const fs::path path = folder / name;
      save(file, path, spec.transfer_syntax);
      out.files.push_back(path);
      out.slices.push_back({path, sop_instance, plane.slice, plane.time_point, 0, plane.position});
    }
    return out;
  }

  // One enhanced multi-frame instance.
  if (spec.shuffle_file_names) std::reverse(planes.begin(), planes.end());
  const std::string sop_instance = new_uid(SITE_INSTANCE_UID_ROOT);
  const fs::path path = folder / (spec.file_prefix + ".dcm");
  DcmFileFormat file;
  DcmDataset& ds_ = *file.getDataset();
  put_common(ds_, spec, uids, ct ? kEnhancedCtImageStorage : kEnhancedMrImageStorage,
             sop_instance);

  std::vector<std::string> type = split_backslash(spec.image_type);
  while (type.size() < 4) type.push_back("NONE");
  type.resize(4);
  if (type[2] == "AXIAL") type[2] = "VOLUME";  // the enhanced IODs' term for a volume
  const std::string image_type = type[0] + "\\" + type[1] + "\\" + type[2] + "\\" + type[3];
  const std::string frame_type = image_type;
  check(ds_.putAndInsertString(DCM_ImageType, image_type.c_str()), "ImageType");
  check(ds_.putAndInsertString(DCM_InstanceNumber, "1"), "InstanceNumber");
  check(ds_.putAndInsertString(DCM_ContentDate, kStudyDate), "ContentDate");
  check(ds_.putAndInsertString(DCM_ContentTime, "100000"), "ContentTime");
  check(ds_.putAndInsertString(DCM_AcquisitionNumber, "1"), "AcquisitionNumber");
  check(ds_.putAndInsertString(DCM_AcquisitionDateTime, (std::string(kStudyDate) + "100000").c_str()),
        "AcquisitionDateTime");
  check(ds_.putAndInsertString(DCM_AcquisitionDuration, ds(10.0 * spec.time_points).c_str()),
        "AcquisitionDuration");
  check(ds_.putAndInsertString(DCM_NumberOfFrames, std::to_string(planes.size()).c_str()),
        "NumberOfFrames");
  check(ds_.putAndInsertString(DCM_PixelPresentation, "MONOCHROME"), "PixelPresentation");
  check(ds_.putAndInsertString(DCM_VolumetricProperties, "VOLUME"), "VolumetricProperties");
  check(ds_.putAndInsertString(DCM_VolumeBasedCalculationTechnique, "NONE"),
        "VolumeBasedCalculationTechnique");
  check(ds_.putAndInsertString(DCM_ContentQualification, "PRODUCT"), "ContentQualification");
  check(ds_.putAndInsertString(DCM_PresentationLUTShape, spec.monochrome1 ? "INVERSE" : "IDENTITY"),
        "PresentationLUTShape");
  check(ds_.insertEmptyElement(DCM_AcquisitionContextSequence), "AcquisitionContextSequence");
  if (spec.time_points > 1)
    check(ds_.putAndInsertString(DCM_NumberOfTemporalPositions,
                                 std::to_string(spec.time_points).c_str()),
          "NumberOfTemporalPositions");

  // Multi-frame dimensions: stack, position in stack (and temporal position).
  const std::string dimension_uid = new_uid(SITE_INSTANCE_UID_ROOT);
  DcmItem* item = nullptr;
  check(ds_.findOrCreateSequenceItem(DCM_DimensionOrganizationSequence, item, -2),
        "DimensionOrganizationSequence");
  check(item->putAndInsertString(DCM_DimensionOrganizationUID, dimension_uid.c_str()),
        "DimensionOrganizationUID");
  std::vector<DcmTagKey> dimensions{DCM_StackID, DCM_InStackPositionNumber};
  if (spec.time_points > 1) dimensions.push_back(DCM_TemporalPositionIndex);
  for (const DcmTagKey& key : dimensions) {
    check(ds_.findOrCreateSequenceItem(DCM_DimensionIndexSequence, item, -2),
          "DimensionIndexSequence");
    check(item->putAndInsertString(DCM_DimensionOrganizationUID, dimension_uid.c_str()),
          "DimensionOrganizationUID");
    check(item->putAndInsertTagKey(DCM_DimensionIndexPointer, key), "DimensionIndexPointer");
    check(item->putAndInsertTagKey(DCM_FunctionalGroupPointer, DCM_FrameContentSequence),
          "FunctionalGroupPointer");
  }

  // Shared functional groups.
  DcmItem* shared = nullptr;
  check(ds_.findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0),
        "SharedFunctionalGroupsSequence");
  check(shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, item, 0), "PixelMeasures");
  check(item->putAndInsertString(DCM_PixelSpacing, pixel_spacing.c_str()), "PixelSpacing");
  check(item->putAndInsertString(DCM_SliceThickness, ds(spec.slice_spacing).c_str()),
        "SliceThickness");
  check(shared->findOrCreateSequenceItem(DCM_PlaneOrientationSequence, item, 0),
        "PlaneOrientation");
  check(item->putAndInsertString(DCM_ImageOrientationPatient, iop.c_str()),
        "ImageOrientationPatient");
  check(shared->findOrCreateSequenceItem(DCM_PixelValueTransformationSequence, item, 0),
        "PixelValueTransformation");
  check(item->putAndInsertString(DCM_RescaleIntercept, ds(spec.rescale_intercept).c_str()),
        "RescaleIntercept");
  check(item->putAndInsertString(DCM_RescaleSlope, ds(spec.rescale_slope).c_str()),
        "RescaleSlope");
  check(item->putAndInsertString(DCM_RescaleType, ct ? "HU" : "US"), "RescaleType");
  check(shared->findOrCreateSequenceItem(DCM_FrameVOILUTSequence, item, 0), "FrameVOILUT");
  check(item->putAndInsertString(DCM_WindowCenter, window_center.c_str()), "WindowCenter");
  check(item->putAndInsertString(DCM_WindowWidth, window_width.c_str()), "WindowWidth");
  check(shared->findOrCreateSequenceItem(
            ct ? DCM_CTImageFrameTypeSequence : DCM_MRImageFrameTypeSequence, item, 0),
        "ImageFrameType");
  check(item->putAndInsertString(DCM_FrameType, frame_type.c_str()), "FrameType");
  check(item->putAndInsertString(DCM_PixelPresentation, "MONOCHROME"), "PixelPresentation");
  check(item->putAndInsertString(DCM_VolumetricProperties, "VOLUME"), "VolumetricProperties");
  check(item->putAndInsertString(DCM_VolumeBasedCalculationTechnique, "NONE"),
        "VolumeBasedCalculationTechnique");

  if (ct) put_enhanced_ct_groups(*shared, spec, normal);

  // Per-frame functional groups, and the frames' pixels.
  std::vector<std::uint16_t> pixels;
  pixels.reserve(planes.size() * static_cast<std::size_t>(spec.rows) * spec.columns);
  std::vector<int> in_stack_position(planes.size());
  {
    // InStackPositionNumber: rank of the plane's slice among the written slices (1-based).
    std::vector<int> written_slices;
    for (const auto& p : planes) written_slices.push_back(p.slice);
    std::sort(written_slices.begin(), written_slices.end());
    written_slices.erase(std::unique(written_slices.begin(), written_slices.end()),
                         written_slices.end());
    for (std::size_t f = 0; f < planes.size(); ++f)
      in_stack_position[f] = static_cast<int>(std::lower_bound(written_slices.begin(),
                                                               written_slices.end(),
                                                               planes[f].slice) -
                                              written_slices.begin()) +
                             1;
  }
  for (std::size_t f = 0; f < planes.size(); ++f) {
    const PlaneToWrite& plane = planes[f];
    DcmItem* per_frame = nullptr;
    check(ds_.findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, per_frame, -2),
          "PerFrameFunctionalGroupsSequence");
    check(per_frame->findOrCreateSequenceItem(DCM_PlanePositionSequence, item, 0),
          "PlanePosition");
    check(item->putAndInsertString(DCM_ImagePositionPatient, ds_multi(plane.position).c_str()),
          "ImagePositionPatient");
    check(per_frame->findOrCreateSequenceItem(DCM_FrameContentSequence, item, 0), "FrameContent");
    const std::string frame_time =
        std::string(kStudyDate) + tm_string(10.0 * plane.time_point);
    check(item->putAndInsertString(DCM_FrameAcquisitionNumber,
                                   std::to_string(plane.time_point + 1).c_str()),
          "FrameAcquisitionNumber");
    check(item->putAndInsertString(DCM_FrameReferenceDateTime, frame_time.c_str()),
          "FrameReferenceDateTime");
    check(item->putAndInsertString(DCM_FrameAcquisitionDateTime, frame_time.c_str()),
          "FrameAcquisitionDateTime");
    check(item->putAndInsertString(DCM_FrameAcquisitionDuration, "10"), "FrameAcquisitionDuration");
    check(item->putAndInsertString(DCM_StackID, "1"), "StackID");
    check(item->putAndInsertUint32(DCM_InStackPositionNumber,
                                   static_cast<Uint32>(in_stack_position[f])),
          "InStackPositionNumber");
    std::string index_values = "1\\" + std::to_string(in_stack_position[f]);
    if (spec.time_points > 1) {
      check(item->putAndInsertUint32(DCM_TemporalPositionIndex,
                                     static_cast<Uint32>(plane.time_point + 1)),
            "TemporalPositionIndex");
      index_values += "\\" + std::to_string(plane.time_point + 1);
    }
    check(item->putAndInsertString(DCM_DimensionIndexValues, index_values.c_str()),
          "DimensionIndexValues");
    const auto plane_values = plane_pixels(spec, plane.slice, plane.time_point);
    pixels.insert(pixels.end(), plane_values.begin(), plane_values.end());
    out.slices.push_back({path, sop_instance, plane.slice, plane.time_point,
                          static_cast<int>(f) + 1, plane.position});
  }
  put_pixels(ds_, spec, pixels);
  save(file, path, spec.transfer_syntax);
  out.files.push_back(path);
  return out;
}

std::vector<fs::path> write_series(const SeriesSpec& spec, const fs::path& folder) {
  return write_series_detailed(spec, folder).files;
}

namespace {

DcmTagKey parse_tag(const std::string& tag) {
  unsigned group = 0, element = 0;
  char comma = 0;
  std::istringstream in(tag);
  in >> std::hex >> group >> comma >> element;
  if (!in || comma != ',' || group > 0xFFFF || element > 0xFFFF)
    throw std::invalid_argument("synthetic DICOM: tag must be \"gggg,eeee\", got " + tag);
  return DcmTagKey(static_cast<Uint16>(group), static_cast<Uint16>(element));
}

void edit_file(const fs::path& file, const std::function<void(DcmDataset&)>& edit) {
  DcmFileFormat ff;
  check(ff.loadFile(file.string().c_str()), "reading " + file.string());
  check(ff.loadAllDataIntoMemory(), "reading " + file.string());
  DcmDataset& ds_ = *ff.getDataset();
  const E_TransferSyntax xfer = ds_.getOriginalXfer();
  edit(ds_);
  check(ff.saveFile(file.string().c_str(), xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0,
                    0, EWM_updateMeta),
        "writing " + file.string());
}

}  // namespace

void set_attribute(const fs::path& file, const std::string& tag, const std::string& value) {
  const DcmTag dcm_tag(parse_tag(tag));
  edit_file(file, [&](DcmDataset& ds_) {
    check(ds_.putAndInsertString(dcm_tag, value.c_str()), "setting " + tag);
  });
}

void remove_attribute(const fs::path& file, const std::string& tag) {
  const DcmTagKey key = parse_tag(tag);
  edit_file(file, [&](DcmDataset& ds_) { check(ds_.findAndDeleteElement(key), "removing " + tag); });
}

}  // namespace sagitta::testing

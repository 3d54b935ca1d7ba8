// Reading the attributes Sagitta needs from one DICOM header: series descriptors and one Frame per
// image plane (single-frame, enhanced multi-frame with functional groups, Siemens mosaic) (the
// declarations and their contract: frame_attributes.h).
#include "frame_attributes.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcdatset.h>
#include <dcmtk/dcmdata/dcelem.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "sagitta/dicom/error.h"
#include "item_text.h"
#include "sagitta/dicom/text.h"
#include "siemens_csa.h"

namespace sagitta::dicom::detail {
namespace {

bool get_double(DcmItem& item, const DcmTagKey& tag, double& value, unsigned long pos = 0) {
  Float64 v = 0;
  if (item.findAndGetFloat64(tag, v, pos).good() && std::isfinite(v)) {
    value = v;
    return true;
  }
  return false;
}

int get_int(DcmItem& item, const DcmTagKey& tag, int fallback = 0) {
  Sint32 v = 0;
  if (item.findAndGetSint32(tag, v).good()) return v;
  Uint16 u = 0;
  if (item.findAndGetUint16(tag, u).good()) return u;
  return fallback;
}

template <std::size_t N>
bool get_doubles(DcmItem& item, const DcmTagKey& tag, std::array<double, N>& out) {
  std::array<double, N> v{};
  for (std::size_t i = 0; i < N; ++i)
    if (!get_double(item, tag, v[i], i)) return false;
  out = v;
  return true;
}

// "HHMMSS.ffffff" (also "HH:MM:SS" from old ACR-NEMA files) -> seconds since midnight.
double parse_time(std::string tm) {
  tm.erase(std::remove(tm.begin(), tm.end(), ':'), tm.end());
  if (tm.size() < 2) return 0.0;
  auto field = [&](std::size_t pos) {
    return pos + 2 <= tm.size() ? std::atof(tm.substr(pos, 2).c_str()) : 0.0;
  };
  double seconds = field(0) * 3600 + field(2) * 60;
  if (tm.size() > 4) seconds += std::atof(tm.substr(4).c_str());
  return seconds;
}

// An attribute of a functional group: the frame's own group first, then the shared one.
DcmItem* functional_group(DcmItem* per_frame, DcmItem* shared, const DcmTagKey& sequence) {
  DcmItem* item = nullptr;
  if (per_frame && per_frame->findAndGetSequenceItem(sequence, item, 0).good() && item) return item;
  if (shared && shared->findAndGetSequenceItem(sequence, item, 0).good() && item) return item;
  return nullptr;
}

std::array<double, 3> normal_of(const std::array<double, 6>& o) {
  return {o[1] * o[5] - o[2] * o[4], o[2] * o[3] - o[0] * o[5], o[0] * o[4] - o[1] * o[3]};
}

// Orientation vectors must be unit length and perpendicular; scanners write them rounded,
// so accept small deviations and renormalise.
bool valid_orientation(std::array<double, 6>& o) {
  double nr = std::sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2]);
  double nc = std::sqrt(o[3] * o[3] + o[4] * o[4] + o[5] * o[5]);
  if (nr < 0.9 || nr > 1.1 || nc < 0.9 || nc > 1.1) return false;
  for (int i = 0; i < 3; ++i) {
    o[i] /= nr;
    o[3 + i] /= nc;
  }
  const double dot = o[0] * o[3] + o[1] * o[4] + o[2] * o[5];
  return std::abs(dot) < 1e-3;
}

std::vector<std::uint8_t> private_bytes(DcmItem& item, const DcmTagKey& tag) {
  DcmElement* element = nullptr;
  if (item.findAndGetElement(tag, element).bad() || !element) return {};
  Uint8* data = nullptr;
  if (element->getUint8Array(data).bad() || !data) return {};
  return {data, data + element->getLength()};
}

// What an image shows, from ImageType's values after the second (M, P, R, I, PHASE, FIELD_MAP,
// Philips' M_FFE/P_SE...), GE's private image type (0043,102F) or an enhanced frame's Complex
// Image Component: "" for magnitude (and anything unmarked), else "phase", "real", "imaginary" or
// "field map". Images of different kinds at the same positions are different stacks.
std::string kind_of(const std::string& image_type) {
  std::vector<std::string> values;
  std::stringstream ss(image_type);
  for (std::string v; std::getline(ss, v, '\\');) values.push_back(v);
  for (std::size_t i = 2; i < values.size(); ++i) {
    const std::string& v = values[i];
    auto is = [&](const char* word, const char* prefix) { return v == word || v.rfind(prefix, 0) == 0; };
    if (v == "P" || is("PHASE", "P_") || v == "PHASE MAP") return "phase";
    if (v == "R" || is("REAL", "R_")) return "real";
    if (v == "I" || is("IMAGINARY", "I_")) return "imaginary";
    if (v == "FIELD_MAP" || v == "FIELDMAP" || v == "B0 MAP" || v == "B0_MAP" || v == "B0MAP") return "field map";
  }
  return "";
}

[[noreturn]] void fail(const std::string& path, const std::string& what) { throw DicomError(path + ": " + what); }

struct MosaicLayout {
  int tiles = 0;
  std::array<double, 3> normal{};
  bool has_normal = false;
};

// Siemens mosaic: the tile count is in (0019,100A) or the CSA image header, the slice normal
// (whose sign sets the tile order) only in the CSA header.
MosaicLayout read_mosaic_layout(DcmItem& item) {
  MosaicLayout layout;
  const auto csa_bytes = private_bytes(item, DcmTagKey(0x0029, 0x1010));
  const auto csa = parse_csa_header(csa_bytes.data(), csa_bytes.size());
  if (auto it = csa.find("NumberOfImagesInMosaic"); it != csa.end() && !it->second.empty())
    layout.tiles = std::atoi(it->second[0].c_str());
  if (layout.tiles <= 0) {
    Uint16 n = 0;
    if (item.findAndGetUint16(DcmTagKey(0x0019, 0x100A), n).good()) {
      layout.tiles = n;
    } else {
      const auto raw = private_bytes(item, DcmTagKey(0x0019, 0x100A));
      if (raw.size() >= 2) layout.tiles = raw[0] | (raw[1] << 8);
    }
  }
  if (auto it = csa.find("SliceNormalVector"); it != csa.end() && it->second.size() == 3) {
    for (int i = 0; i < 3; ++i) layout.normal[i] = std::atof(it->second[i].c_str());
    const double len = std::sqrt(layout.normal[0] * layout.normal[0] +
                                 layout.normal[1] * layout.normal[1] +
                                 layout.normal[2] * layout.normal[2]);
    if (len > 0.5) {
      for (auto& v : layout.normal) v /= len;
      layout.has_normal = true;
    }
  }
  return layout;
}

}  // namespace

SeriesInfo read_series_info(DcmItem& d) {
  SeriesInfo info;
  info.specific_character_set = item_code(d, DCM_SpecificCharacterSet);
  info.patient_name = item_text(d, DCM_PatientName);
  info.patient_id = item_text(d, DCM_PatientID);
  info.patient_birth_date = item_code(d, DCM_PatientBirthDate);
  info.patient_sex = item_code(d, DCM_PatientSex);
  info.study_instance_uid = item_code(d, DCM_StudyInstanceUID);
  info.study_date = item_code(d, DCM_StudyDate);
  info.study_time = item_code(d, DCM_StudyTime);
  info.study_id = item_text(d, DCM_StudyID);
  info.study_description = item_text(d, DCM_StudyDescription);
  info.accession_number = item_text(d, DCM_AccessionNumber);
  info.referring_physician_name = item_text(d, DCM_ReferringPhysicianName);
  info.series_instance_uid = item_code(d, DCM_SeriesInstanceUID);
  info.series_number = item_code(d, DCM_SeriesNumber);
  info.series_description = item_text(d, DCM_SeriesDescription);
  info.modality = item_code(d, DCM_Modality);
  info.body_part = item_code(d, DCM_BodyPartExamined);
  info.frame_of_reference_uid = item_code(d, DCM_FrameOfReferenceUID);
  info.manufacturer = item_text(d, DCM_Manufacturer);
  info.manufacturer_model = item_text(d, DCM_ManufacturerModelName);
  info.sop_class_uid = item_code(d, DCM_SOPClassUID);
  return info;
}

PixelFormat read_pixel_format(DcmItem& d, const std::string& path) {
  PixelFormat f;
  f.rows = get_int(d, DCM_Rows);
  f.columns = get_int(d, DCM_Columns);
  f.samples_per_pixel = get_int(d, DCM_SamplesPerPixel, 1);
  f.bits_allocated = get_int(d, DCM_BitsAllocated);
  f.bits_stored = get_int(d, DCM_BitsStored, f.bits_allocated);
  f.high_bit = get_int(d, DCM_HighBit, f.bits_stored - 1);
  f.pixel_signed = get_int(d, DCM_PixelRepresentation) == 1;
  f.photometric = item_code(d, DCM_PhotometricInterpretation);
  f.number_of_frames = get_int(d, DCM_NumberOfFrames, 1);
  if (f.number_of_frames < 1) f.number_of_frames = 1;

  if (f.rows <= 0 || f.columns <= 0)
    fail(path, "Rows/Columns are " + std::to_string(f.rows) + "x" + std::to_string(f.columns) +
         "; an image needs both above zero");
  if (f.bits_allocated != 8 && f.bits_allocated != 16 && f.bits_allocated != 32)
    fail(path, "BitsAllocated " + std::to_string(f.bits_allocated) + " is not supported (8, 16 or 32)");
  if (f.bits_stored <= 0 || f.bits_stored > f.bits_allocated || f.high_bit >= f.bits_allocated ||
      f.high_bit + 1 < f.bits_stored)
    fail(path, "BitsStored/HighBit (" + std::to_string(f.bits_stored) + "/" +
         std::to_string(f.high_bit) + ") do not fit BitsAllocated " +
         std::to_string(f.bits_allocated));
  if (f.samples_per_pixel != 1)
    fail(path, "colour images (SamplesPerPixel " + std::to_string(f.samples_per_pixel) +
         ", " + f.photometric + ") cannot be loaded as a scalar volume");
  // A volume of more than 2^31 voxels per frame set is not a real scanner image.
  const double voxels = double(f.rows) * f.columns * f.number_of_frames;
  if (voxels > 2147483647.0)
    fail(path, "the image claims " + std::to_string(f.rows) + "x" + std::to_string(f.columns) + "x" +
         std::to_string(f.number_of_frames) + " voxels, more than any real scanner image");
  return f;
}

namespace {

// The attributes every frame of the file shares (before any per-frame geometry).
Frame base_frame(DcmDataset& d, const HeaderRecord& rec, const std::string& path, const std::string& ts_uid) {
  Frame base;
  base.path = path;
  base.sop_instance_uid = item_code(d, DCM_SOPInstanceUID);
  base.sop_class_uid = rec.info.sop_class_uid;
  base.transfer_syntax_uid = ts_uid;
  base.rows = rec.format.rows;
  base.bits_stored = rec.format.bits_stored;
  base.pixel_signed = rec.format.pixel_signed;
  base.columns = rec.format.columns;
  base.instance_number = get_int(d, DCM_InstanceNumber);
  base.acquisition_number = get_int(d, DCM_AcquisitionNumber);
  base.temporal_position = get_int(d, DCM_TemporalPositionIdentifier);
  base.echo_number = get_int(d, DCM_EchoNumbers);
  base.acquisition_time = parse_time(item_code(d, DCM_AcquisitionTime));
  double trigger_ms = 0;
  if (get_double(d, DCM_TriggerTime, trigger_ms)) base.acquisition_time += trigger_ms / 1000.0;
  get_double(d, DCM_GantryDetectorTilt, base.gantry_tilt);
  get_double(d, DCM_SliceThickness, base.slice_thickness);
  get_double(d, DCM_SpacingBetweenSlices, base.spacing_between_slices);
  base.image_type = item_code(d, DCM_ImageType);
  base.localizer = base.image_type.find("LOCALIZER") != std::string::npos;
  base.image_kind = kind_of(base.image_type);
  Sint16 ge_type = 0;  // GE: 0 magnitude, 1 phase, 2 real, 3 imaginary
  if (base.image_kind.empty() && item_code(d, DCM_Manufacturer).rfind("GE", 0) == 0) {
    const auto raw = private_bytes(d, DcmTagKey(0x0043, 0x102F));
    if (raw.size() >= 2) ge_type = static_cast<Sint16>(raw[0] | (raw[1] << 8));
    if (ge_type == 1) base.image_kind = "phase";
    else if (ge_type == 2) base.image_kind = "real";
    else if (ge_type == 3) base.image_kind = "imaginary";
  }
  get_double(d, DCM_RescaleSlope, base.rescale_slope);
  get_double(d, DCM_RescaleIntercept, base.rescale_intercept);
  if (base.rescale_slope == 0.0) base.rescale_slope = 1.0;  // a zero slope is a writer's bug
  // RT Dose stores dose as integers times DoseGridScaling (Gy).
  double dose_scaling = 0;
  if (get_double(d, DCM_DoseGridScaling, dose_scaling) && dose_scaling > 0) base.rescale_slope *= dose_scaling;
  return base;
}

// Position, orientation and pixel spacing of an image without functional groups.
void read_plane_geometry(DcmDataset& d, const std::string& path, Frame& f) {
  if (!get_doubles(d, DCM_ImagePositionPatient, f.position)) {
    // Some vendors' series (e.g. one vendor's DTI) keep slice positions only in private tags.
    // Sagitta does not read them: their layout is undocumented and cannot be checked, and a
    // wrong guess puts every slice in the wrong place silently. Say so plainly.
    bool has_private = false;
    for (unsigned long i = 0; i < d.card() && !has_private; ++i)
      has_private = (d.getElement(i)->getGTag() & 1) != 0 && d.getElement(i)->getGTag() > 0x0008;
    std::string manufacturer = item_text(d, DCM_Manufacturer);
    if (manufacturer.empty()) manufacturer = "unknown manufacturer";
    if (has_private)
      fail(path, "no ImagePositionPatient: this " + manufacturer +
                     " image's slice positions, if any, are only in private tags, which Sagitta does not use "
                     "(vendor-private geometry is undocumented and cannot be checked); export the series with "
                     "standard geometry (ImagePositionPatient) from the scanner or the vendor's tools");
    fail(path, "no ImagePositionPatient; the image cannot be placed in patient space");
  }
  if (!get_doubles(d, DCM_ImageOrientationPatient, f.orientation) || !valid_orientation(f.orientation))
    fail(path, "missing or invalid ImageOrientationPatient");
  if (!get_doubles(d, DCM_PixelSpacing, f.pixel_spacing) || f.pixel_spacing[0] <= 0 || f.pixel_spacing[1] <= 0)
    fail(path, "missing or invalid PixelSpacing");
}

// Legacy multi-frame without functional groups: RT Dose places its frames with
// GridFrameOffsetVector (offsets along the normal, relative to the first frame when the first
// offset is 0, else plane coordinates whose first value is the first frame's); NM and others
// with SpacingBetweenSlices.
void place_legacy_frames(DcmDataset& d, const Frame& f, const std::string& path, HeaderRecord& rec) {
  const int frames = rec.format.number_of_frames;
  const auto n = normal_of(f.orientation);
  std::vector<double> offsets(frames);
  double offset = 0, spacing = 0;
  if (get_double(d, DCM_GridFrameOffsetVector, offset, 0)) {
    const double first = offset;
    for (int k = 0; k < frames; ++k) {
      if (!get_double(d, DCM_GridFrameOffsetVector, offset, k))
        fail(path, "GridFrameOffsetVector has fewer values than NumberOfFrames");
      offsets[k] = offset - first;
    }
  } else if (get_double(d, DCM_SpacingBetweenSlices, spacing) && spacing > 0) {
    for (int k = 0; k < frames; ++k) offsets[k] = k * spacing;
  } else {
    fail(path, std::to_string(frames) + " frames without functional groups, GridFrameOffsetVector or SpacingBetweenSlices");
  }
  for (int k = 0; k < frames; ++k) {
    Frame fk = f;
    fk.frame = k + 1;
    for (int i = 0; i < 3; ++i) fk.position[i] = f.position[i] + offsets[k] * n[i];
    rec.frames.push_back(fk);
  }
  rec.notes.push_back("multi-frame without functional groups: frames placed along the normal");
}

// Siemens mosaic: split the image into its tiles and place each one.
void split_mosaic(DcmDataset& d, const Frame& f, const std::string& path, HeaderRecord& rec) {
  const MosaicLayout layout = read_mosaic_layout(d);
  if (layout.tiles <= 0) fail(path, "Siemens mosaic without NumberOfImagesInMosaic; cannot split its tiles");
  const int grid = static_cast<int>(std::ceil(std::sqrt(double(layout.tiles))));
  if (rec.format.rows % grid != 0 || rec.format.columns % grid != 0)
    fail(path, "mosaic of " + std::to_string(rec.format.rows) + "x" + std::to_string(rec.format.columns) +
                   " does not divide into " + std::to_string(grid) + "x" + std::to_string(grid) + " tiles");
  const int tile_rows = rec.format.rows / grid, tile_cols = rec.format.columns / grid;
  double spacing = 0;
  if (!get_double(d, DCM_SpacingBetweenSlices, spacing) || spacing <= 0) get_double(d, DCM_SliceThickness, spacing);
  if (spacing <= 0) fail(path, "mosaic without SpacingBetweenSlices or SliceThickness");
  auto n = normal_of(f.orientation);
  if (layout.has_normal) {
    const double dot = n[0] * layout.normal[0] + n[1] * layout.normal[1] + n[2] * layout.normal[2];
    if (dot < 0) {
      for (auto& v : n) v = -v;
      rec.notes.push_back("mosaic tiles run against the image normal (CSA SliceNormalVector)");
    }
  }
  // ImagePositionPatient refers to the corner of the whole mosaic; move it to the first tile.
  const std::array<double, 3> r{f.orientation[0], f.orientation[1], f.orientation[2]};
  const std::array<double, 3> c{f.orientation[3], f.orientation[4], f.orientation[5]};
  const double shift_c = f.pixel_spacing[1] * (rec.format.columns - tile_cols) / 2.0;
  const double shift_r = f.pixel_spacing[0] * (rec.format.rows - tile_rows) / 2.0;
  for (int k = 0; k < layout.tiles; ++k) {
    Frame fk = f;
    fk.mosaic_tile = k;
    fk.rows = tile_rows;
    fk.columns = tile_cols;
    for (int i = 0; i < 3; ++i) fk.position[i] = f.position[i] + r[i] * shift_c + c[i] * shift_r + k * spacing * n[i];
    rec.frames.push_back(fk);
  }
  rec.notes.push_back("Siemens mosaic of " + std::to_string(layout.tiles) + " tiles of " + std::to_string(tile_rows) +
                      "x" + std::to_string(tile_cols));
}

// Frame k of an enhanced multi-frame image: geometry and rescale from its functional groups.
Frame enhanced_frame(DcmItem* per_frame, DcmItem* shared, const Frame& base, int k, const std::string& path) {
  Frame f = base;
  f.frame = k + 1;
  DcmItem* g = functional_group(per_frame, shared, DCM_PlanePositionSequence);
  if (!g || !get_doubles(*g, DCM_ImagePositionPatient, f.position))
    fail(path, "frame " + std::to_string(k + 1) + " has no PlanePositionSequence");
  g = functional_group(per_frame, shared, DCM_PlaneOrientationSequence);
  if (!g || !get_doubles(*g, DCM_ImageOrientationPatient, f.orientation) || !valid_orientation(f.orientation))
    fail(path, "frame " + std::to_string(k + 1) + " has no valid PlaneOrientationSequence");
  g = functional_group(per_frame, shared, DCM_PixelMeasuresSequence);
  if (!g || !get_doubles(*g, DCM_PixelSpacing, f.pixel_spacing) || f.pixel_spacing[0] <= 0 || f.pixel_spacing[1] <= 0)
    fail(path, "frame " + std::to_string(k + 1) + " has no valid PixelMeasuresSequence");
  get_double(*g, DCM_SliceThickness, f.slice_thickness);
  get_double(*g, DCM_SpacingBetweenSlices, f.spacing_between_slices);
  if ((g = functional_group(per_frame, shared, DCM_PixelValueTransformationSequence))) {
    get_double(*g, DCM_RescaleSlope, f.rescale_slope);
    get_double(*g, DCM_RescaleIntercept, f.rescale_intercept);
    if (f.rescale_slope == 0.0) f.rescale_slope = 1.0;
  }
  if ((g = functional_group(per_frame, shared, DCM_FrameContentSequence))) {
    f.temporal_position = get_int(*g, DCM_TemporalPositionIndex, f.temporal_position);
    std::string dt = item_code(*g, DCM_FrameAcquisitionDateTime);
    if (dt.size() > 8) f.acquisition_time = parse_time(dt.substr(8));
  }
  if ((g = functional_group(per_frame, shared, DCM_MRImageFrameTypeSequence)) ||
      (g = functional_group(per_frame, shared, DCM_CTImageFrameTypeSequence))) {
    const std::string frame_type = item_code(*g, DCM_FrameType);
    if (!frame_type.empty()) f.localizer = frame_type.find("LOCALIZER") != std::string::npos;
    const std::string component = item_code(*g, DCM_ComplexImageComponent);
    if (component == "PHASE") f.image_kind = "phase";
    else if (component == "REAL") f.image_kind = "real";
    else if (component == "IMAGINARY") f.image_kind = "imaginary";
    else if (component == "MAGNITUDE") f.image_kind = "";
    else if (!frame_type.empty()) f.image_kind = kind_of(frame_type);
  }
  return f;
}

void read_enhanced_frames(DcmDataset& d, DcmItem* shared, const Frame& base, const std::string& path,
                          HeaderRecord& rec) {
  for (int k = 0; k < rec.format.number_of_frames; ++k) {
    DcmItem* per_frame = nullptr;
    if (d.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, per_frame, k).bad())
      fail(path, "PerFrameFunctionalGroupsSequence has fewer items than NumberOfFrames (" +
                     std::to_string(rec.format.number_of_frames) + ")");
    rec.frames.push_back(enhanced_frame(per_frame, shared, base, k, path));
  }
}

}  // namespace

HeaderRecord read_header(DcmDataset& d, const std::string& path, const std::string& ts_uid) {
  HeaderRecord rec;
  rec.info = read_series_info(d);
  if (!known_character_set(rec.info.specific_character_set))
    rec.notes.push_back("SpecificCharacterSet '" + rec.info.specific_character_set +
                        "' is not known; characters outside ASCII are shown as U+FFFD");
  rec.info.transfer_syntax_uid = ts_uid;
  rec.format = read_pixel_format(d, path);
  const Frame base = base_frame(d, rec, path, ts_uid);

  DcmItem* shared = nullptr;
  d.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0);
  DcmItem* first_per_frame = nullptr;
  d.findAndGetSequenceItem(DCM_PerFrameFunctionalGroupsSequence, first_per_frame, 0);
  const bool enhanced = first_per_frame != nullptr;
  if (enhanced) {
    read_enhanced_frames(d, shared, base, path, rec);
    return rec;
  }

  Frame f = base;
  read_plane_geometry(d, path, f);
  const bool mosaic = f.image_type.find("MOSAIC") != std::string::npos;
  if (mosaic)
    split_mosaic(d, f, path, rec);
  else if (rec.format.number_of_frames > 1)
    place_legacy_frames(d, f, path, rec);
  else
    rec.frames.push_back(f);
  return rec;
}

}  // namespace sagitta::dicom::detail

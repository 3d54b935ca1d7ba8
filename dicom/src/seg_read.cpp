// DICOM SEG reading with dcmdata: dcmseg 3.6.7 knows BINARY and FRACTIONAL but not the newer
// LABELMAP type (Label Map Segmentation Storage), and real SEGs often bend the functional group
// rules dcmseg enforces, so the reader walks the dataset itself.
#include "frame_attributes.h"
#include "item_text.h"
#include "nesting.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmiod/cielabutil.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <set>
#include <strings.h>

#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/text.h"
#include "sagitta/dicom/seg.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;

namespace {

constexpr const char* kSegmentationStorage = "1.2.840.10008.5.1.4.1.1.66.4";
constexpr const char* kLabelMapSegmentationStorage = "1.2.840.10008.5.1.4.1.1.66.7";

DcmItem* first_item(DcmItem& item, const DcmTagKey& sequence) {
  DcmItem* out = nullptr;
  return item.findAndGetSequenceItem(sequence, out, 0).good() ? out : nullptr;
}

// Values of a multi-valued DS attribute in a functional group (sequence -> first item -> tag).
bool group_values(DcmItem* fg, const DcmTagKey& sequence, const DcmTagKey& tag, std::size_t n, double* out) {
  if (!fg) return false;
  DcmItem* item = first_item(*fg, sequence);
  if (!item) return false;
  for (std::size_t i = 0; i < n; ++i) {
    Float64 v = 0;
    if (item->findAndGetFloat64(tag, v, static_cast<unsigned long>(i)).bad()) return false;
    out[i] = v;
  }
  return true;
}

CodedConcept coded(DcmItem& item, const DcmTagKey& sequence) {
  DcmItem* c = first_item(item, sequence);
  if (!c) return {};
  std::string value = detail::item_text(*c, DCM_CodeValue);
  if (value.empty()) value = detail::item_text(*c, DCM_LongCodeValue);
  if (value.empty()) value = detail::item_text(*c, DCM_URNCodeValue);
  return {value, detail::item_text(*c, DCM_CodingSchemeDesignator), detail::item_text(*c, DCM_CodeMeaning)};
}

struct FrameInfo {
  std::array<double, 3> position{};
  int segment = 0;  // referenced segment number (0 for LABELMAP frames)
  std::vector<std::string> sources;
};

using Vec = std::array<double, 3>;
double dot(const Vec& a, const Vec& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vec cross(const Vec& a, const Vec& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

// Segment number -> index in ReadSegResult::segments.
using SegmentIndex = std::map<int, std::size_t>;

// Loads `path` and makes its pixel data readable; throws unless it is a SEG.
void load_seg(DcmFileFormat& file, const fs::path& path, const std::string& where) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw DicomError(where + ": no such file");
  if (const auto problem = detail::nesting_problem(path); !problem.empty()) throw DicomError(where + ": " + problem);
  const OFCondition loaded = file.loadFile(path.c_str());
  if (loaded.bad()) throw DicomError(fmt::format("{}: not a readable DICOM file ({})", where, loaded.text()));
  DcmDataset& ds = *file.getDataset();
  const std::string sop_class = detail::item_text(ds, DCM_SOPClassUID);
  if (sop_class != kSegmentationStorage && sop_class != kLabelMapSegmentationStorage)
    throw DicomError(fmt::format("{}: not a DICOM SEG (SOP Class UID {})", where, sop_class.empty() ? "missing" : sop_class));
  if (DcmXfer(ds.getOriginalXfer()).isEncapsulated() &&
      ds.chooseRepresentation(EXS_LittleEndianExplicit, nullptr).bad())
    throw DicomError(fmt::format("{}: cannot decode the pixel data (transfer syntax {})", where,
                                 DcmXfer(ds.getOriginalXfer()).getXferName()));
}

void read_identity(DcmDataset& ds, ReadSegResult& r) {
  const SeriesInfo series = detail::read_series_info(ds);
  r.segmentation_type = detail::item_text(ds, DCM_SegmentationType);
  r.sop_instance_uid = detail::item_text(ds, DCM_SOPInstanceUID);
  r.series_instance_uid = series.series_instance_uid;
  r.study_instance_uid = series.study_instance_uid;
  r.frame_of_reference_uid = series.frame_of_reference_uid;
}

// Segmentation type and frame size, checked against each other.
struct SegLayout {
  bool binary = false, fractional = false, labelmap = false;
  Uint16 rows = 0, columns = 0, bits_allocated = 0;
  Sint32 frames = 0;
};

SegLayout read_layout(DcmDataset& ds, const std::string& type, const std::string& where) {
  SegLayout l;
  l.binary = type == "BINARY";
  l.fractional = type == "FRACTIONAL";
  l.labelmap = type == "LABELMAP";
  if (!l.binary && !l.fractional && !l.labelmap)
    throw DicomError(fmt::format("{}: unknown Segmentation Type '{}'", where, type));
  ds.findAndGetUint16(DCM_Rows, l.rows);
  ds.findAndGetUint16(DCM_Columns, l.columns);
  ds.findAndGetUint16(DCM_BitsAllocated, l.bits_allocated);
  ds.findAndGetSint32(DCM_NumberOfFrames, l.frames);
  if (l.rows == 0 || l.columns == 0 || l.frames <= 0)
    throw DicomError(
        fmt::format("{}: no frames (Rows {}, Columns {}, Number of Frames {})", where, l.rows, l.columns, l.frames));
  if ((l.binary && l.bits_allocated != 1) || (l.fractional && l.bits_allocated != 8) ||
      (l.labelmap && l.bits_allocated != 8 && l.bits_allocated != 16))
    throw DicomError(fmt::format("{}: {} SEG with {} bits allocated", where, type, l.bits_allocated));
  return l;
}

// The Recommended Display CIELab Value as RGB 0..255, when the segment has one.
void read_display_color(DcmItem& item, SegmentDescription& d) {
  Uint16 lab[3];
  bool has_lab = true;
  for (unsigned long j = 0; j < 3; ++j) has_lab &= item.findAndGetUint16(DCM_RecommendedDisplayCIELabValue, lab[j], j).good();
  if (!has_lab) return;
  double R = 0, G = 0, B = 0;
  IODCIELabUtil::dicomLab2RGB(R, G, B, lab[0], lab[1], lab[2]);
  d.color = {static_cast<int>(std::lround(std::clamp(R, 0.0, 1.0) * 255)),
             static_cast<int>(std::lround(std::clamp(G, 0.0, 1.0) * 255)),
             static_cast<int>(std::lround(std::clamp(B, 0.0, 1.0) * 255))};
}

// One item of the Segment Sequence; its label is the segment number unless the label template
// names the segment.
SegmentDescription describe_segment(DcmItem& item, Uint16 number, const ReadSegOptions& options) {
  SegmentDescription d;
  d.name = detail::item_text(item, DCM_SegmentLabel);
  d.category = coded(item, DCM_SegmentedPropertyCategoryCodeSequence);
  d.type = coded(item, DCM_SegmentedPropertyTypeCodeSequence);
  d.label = number;
  read_display_color(item, d);
  for (const auto& t : options.label_template)
    if (!t.name.empty() && strcasecmp(t.name.c_str(), d.name.c_str()) == 0) d.label = t.label;
  return d;
}

SegmentIndex read_segments(DcmDataset& ds, const ReadSegOptions& options, const std::string& where,
                           std::vector<SegmentDescription>& segments) {
  SegmentIndex segment_index;
  DcmSequenceOfItems* segment_sequence = nullptr;
  if (ds.findAndGetSequence(DCM_SegmentSequence, segment_sequence).bad() || !segment_sequence ||
      segment_sequence->card() == 0)
    throw DicomError(where + ": no Segment Sequence");
  for (unsigned long i = 0; i < segment_sequence->card(); ++i) {
    DcmItem& item = *segment_sequence->getItem(i);
    Uint16 number = 0;
    if (item.findAndGetUint16(DCM_SegmentNumber, number).bad())
      throw DicomError(fmt::format("{}: segment item {} has no Segment Number", where, i + 1));
    const SegmentDescription d = describe_segment(item, number, options);
    if (!segment_index.emplace(number, segments.size()).second)
      throw DicomError(fmt::format("{}: segment number {} appears twice", where, number));
    segments.push_back(d);
  }
  return segment_index;
}

// An attribute of a functional group: the frame's own group first, then the shared one.
bool own_or_shared(DcmItem* fg, DcmItem* shared, const DcmTagKey& sequence, const DcmTagKey& tag, std::size_t n,
                   double* out) {
  return group_values(fg, sequence, tag, n, out) || group_values(shared, sequence, tag, n, out);
}

// What the functional groups say: the plane geometry all frames share, and each frame's place.
struct FrameGroups {
  std::array<double, 6> orientation{};
  std::array<double, 2> pixel_spacing{};
  double spacing_between = 0, thickness = 0;
  std::vector<FrameInfo> info;
};

// Orientation and pixel spacing of frame f: the first frame's are the stack's, the others must
// agree with them.
void read_plane(DcmItem* fg, DcmItem* shared, std::size_t f, FrameGroups& g, const std::string& where) {
  std::array<double, 6> o{};
  if (!own_or_shared(fg, shared, DCM_PlaneOrientationSequence, DCM_ImageOrientationPatient, 6, o.data()))
    throw DicomError(fmt::format("{}: frame {} has no Image Orientation (Patient)", where, f + 1));
  std::array<double, 2> ps{};
  if (!own_or_shared(fg, shared, DCM_PixelMeasuresSequence, DCM_PixelSpacing, 2, ps.data()))
    throw DicomError(fmt::format("{}: frame {} has no Pixel Spacing", where, f + 1));
  if (f == 0) {
    g.orientation = o;
    g.pixel_spacing = ps;
    own_or_shared(fg, shared, DCM_PixelMeasuresSequence, DCM_SpacingBetweenSlices, 1, &g.spacing_between);
    own_or_shared(fg, shared, DCM_PixelMeasuresSequence, DCM_SliceThickness, 1, &g.thickness);
    return;
  }
  for (int i = 0; i < 6; ++i)
    if (std::abs(o[i] - g.orientation[i]) > 1e-4)
      throw DicomError(fmt::format("{}: frames have different orientations; not a stack", where));
  for (int i = 0; i < 2; ++i)
    if (std::abs(ps[i] - g.pixel_spacing[i]) > 1e-4 * g.pixel_spacing[i])
      throw DicomError(fmt::format("{}: frames have different pixel spacings; not a stack", where));
}

int referenced_segment(DcmItem* fg, DcmItem* shared, std::size_t f, const SegmentIndex& segment_index,
                       const std::string& where) {
  Uint16 number = 0;
  DcmItem* id = fg ? first_item(*fg, DCM_SegmentIdentificationSequence) : nullptr;
  if (!id && shared) id = first_item(*shared, DCM_SegmentIdentificationSequence);
  if (!id || id->findAndGetUint16(DCM_ReferencedSegmentNumber, number).bad())
    throw DicomError(fmt::format("{}: frame {} names no segment", where, f + 1));
  if (!segment_index.count(number))
    throw DicomError(fmt::format("{}: frame {} references segment {}, which is not defined", where, f + 1, number));
  return number;
}

// The SOP Instance UIDs of the Derivation Image Sequence's source images.
std::vector<std::string> derivation_sources(DcmItem* fg) {
  std::vector<std::string> out;
  DcmSequenceOfItems* derivations = nullptr;
  if (fg && fg->findAndGetSequence(DCM_DerivationImageSequence, derivations).good() && derivations)
    for (unsigned long d = 0; d < derivations->card(); ++d) {
      DcmSequenceOfItems* sources = nullptr;
      if (derivations->getItem(d)->findAndGetSequence(DCM_SourceImageSequence, sources).good() && sources)
        for (unsigned long s = 0; s < sources->card(); ++s)
          out.push_back(detail::item_text(*sources->getItem(s), DCM_ReferencedSOPInstanceUID));
    }
  return out;
}

FrameGroups read_frames(DcmDataset& ds, const SegLayout& layout, const SegmentIndex& segment_index,
                        const std::string& where) {
  DcmItem* shared = first_item(ds, DCM_SharedFunctionalGroupsSequence);
  DcmSequenceOfItems* per_frame = nullptr;
  ds.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame);
  if (!per_frame || per_frame->card() != static_cast<unsigned long>(layout.frames))
    throw DicomError(fmt::format("{}: {} per-frame functional group items for {} frames", where,
                                 per_frame ? per_frame->card() : 0, layout.frames));
  FrameGroups g;
  g.info.resize(static_cast<std::size_t>(layout.frames));
  for (std::size_t f = 0; f < g.info.size(); ++f) {
    DcmItem* fg = per_frame->getItem(static_cast<unsigned long>(f));
    read_plane(fg, shared, f, g, where);
    if (!own_or_shared(fg, shared, DCM_PlanePositionSequence, DCM_ImagePositionPatient, 3, g.info[f].position.data()))
      throw DicomError(fmt::format("{}: frame {} has no Image Position (Patient)", where, f + 1));
    if (!layout.labelmap) g.info[f].segment = referenced_segment(fg, shared, f, segment_index, where);
    g.info[f].sources = derivation_sources(fg);
  }
  return g;
}

// The Referenced Series Sequence's series and instances, then every other source instance the
// frames name, each once.
void read_references(DcmDataset& ds, const std::vector<FrameInfo>& info, ReadSegResult& r) {
  std::set<std::string> seen;
  DcmItem* series = first_item(ds, DCM_ReferencedSeriesSequence);
  if (series) {
    r.referenced_series_uid = detail::item_text(*series, DCM_SeriesInstanceUID);
    DcmSequenceOfItems* instances = nullptr;
    if (series->findAndGetSequence(DCM_ReferencedInstanceSequence, instances).good() && instances)
      for (unsigned long i = 0; i < instances->card(); ++i) {
        const std::string uid = detail::item_text(*instances->getItem(i), DCM_ReferencedSOPInstanceUID);
        if (seen.insert(uid).second) r.referenced_instances.push_back(uid);
      }
  }
  for (const auto& f : info)
    for (const auto& s : f.sources)
      if (seen.insert(s).second) r.referenced_instances.push_back(s);
}

// The reference series' grid: every frame must come from that series and lie on one of its
// slices. Sets the slice of each frame.
LabelMap::Pointer grid_of_reference(const ReadSegOptions& options, const SegLayout& layout,
                                    const std::vector<FrameInfo>& info, const std::string& frame_of_reference_uid,
                                    const std::string& where, std::vector<long>& slice_of_frame) {
  const auto& g = *options.reference_grid;
  const auto size = g.GetLargestPossibleRegion().GetSize();
  if (size[0] != layout.columns || size[1] != layout.rows)
    throw DicomError(fmt::format("{}: frames are {}x{} but the reference series' slices are {}x{}", where, layout.columns,
                                 layout.rows, size[0], size[1]));
  if (options.reference && !options.reference->frame_of_reference_uid.empty() && !frame_of_reference_uid.empty() &&
      options.reference->frame_of_reference_uid != frame_of_reference_uid)
    throw DicomError(fmt::format("{}: Frame of Reference UID {} differs from the reference series' {}", where,
                                 frame_of_reference_uid, options.reference->frame_of_reference_uid));
  std::set<std::string> known;
  if (options.reference)
    for (const auto& v : options.reference->slices)
      for (const auto& s : v) known.insert(s.sop_instance_uid);
  for (std::size_t f = 0; f < info.size(); ++f) {
    for (const auto& s : info[f].sources)
      if (!known.empty() && !known.count(s))
        throw DicomError(fmt::format("{}: frame {} was derived from image {}, which is not in the reference series {}",
                                     where, f + 1, s, options.reference->series_instance_uid));
    itk::Point<double, 3> p;
    for (int i = 0; i < 3; ++i) p[i] = info[f].position[i];
    itk::ContinuousIndex<double, 3> index;
    g.TransformPhysicalPointToContinuousIndex(p, index);
    const long k = std::lround(index[2]);
    if (std::abs(index[0]) > 1e-2 || std::abs(index[1]) > 1e-2 || std::abs(index[2] - k) > 1e-2 || k < 0 ||
        k >= static_cast<long>(size[2]))
      throw DicomError(fmt::format("{}: frame {} at ({:.3f}, {:.3f}, {:.3f}) is not on a slice of the reference series",
                                   where, f + 1, p[0], p[1], p[2]));
    slice_of_frame[f] = k;
  }
  LabelMap::Pointer labels = LabelMap::New();
  labels->SetRegions(g.GetLargestPossibleRegion());
  labels->SetOrigin(g.GetOrigin());
  labels->SetSpacing(g.GetSpacing());
  labels->SetDirection(g.GetDirection());
  return labels;
}

// Slices are spaced by Spacing Between Slices when given (frames of empty slices are absent),
// else by the smallest gap between the frames' distinct distances along the normal.
double slice_step(const std::vector<double>& distinct, const FrameGroups& g) {
  double step = g.spacing_between > 0 ? g.spacing_between : 0;
  if (step <= 0)
    for (std::size_t i = 1; i < distinct.size(); ++i)
      step = step <= 0 ? distinct[i] - distinct[i - 1] : std::min(step, distinct[i] - distinct[i - 1]);
  if (step <= 0) step = g.thickness > 0 ? g.thickness : 1.0;
  return step;
}

// All frames must share the in-plane origin: a stack, not planes shifted within themselves.
void check_not_shifted(const std::vector<FrameInfo>& info, const std::vector<long>& slice_of_frame, const Vec& origin,
                       double step, const Vec& normal, const std::string& where) {
  for (std::size_t f = 0; f < info.size(); ++f) {
    Vec expected;
    for (int i = 0; i < 3; ++i) expected[i] = origin[i] + slice_of_frame[f] * step * normal[i];
    for (int i = 0; i < 3; ++i)
      if (std::abs(expected[i] - info[f].position[i]) > 1e-2)
        throw DicomError(fmt::format("{}: frame {} is shifted within its plane; pass the source series", where, f + 1));
  }
}

// The stack the frames describe. Sets the slice of each frame.
LabelMap::Pointer grid_of_frames(const FrameGroups& g, const SegLayout& layout, const std::string& where,
                                 std::vector<long>& slice_of_frame) {
  const Vec row{g.orientation[0], g.orientation[1], g.orientation[2]};
  const Vec col{g.orientation[3], g.orientation[4], g.orientation[5]};
  const Vec normal = cross(row, col);
  // Distance of each frame along the normal.
  std::vector<double> d(g.info.size());
  for (std::size_t f = 0; f < g.info.size(); ++f) d[f] = dot(normal, g.info[f].position);
  std::vector<double> distinct(d);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end(), [](double a, double b) { return std::abs(a - b) < 1e-3; }),
                 distinct.end());
  const double step = slice_step(distinct, g);
  const double d0 = distinct.front();
  const long n = std::lround((distinct.back() - d0) / step) + 1;
  std::size_t first = 0;
  for (std::size_t f = 0; f < g.info.size(); ++f) {
    const double kf = (d[f] - d0) / step;
    const long k = std::lround(kf);
    if (std::abs(kf - k) > 1e-2)
      throw DicomError(fmt::format("{}: frame {} lies between slices {:.3f} mm apart; pass the source series", where, f + 1,
                                   step));
    slice_of_frame[f] = k;
    if (k == 0) first = f;
  }
  const Vec origin = g.info[first].position;
  check_not_shifted(g.info, slice_of_frame, origin, step, normal, where);

  LabelMap::Pointer labels = LabelMap::New();
  LabelMap::RegionType region;
  region.SetSize({{layout.columns, layout.rows, static_cast<itk::SizeValueType>(n)}});
  labels->SetRegions(region);
  LabelMap::PointType o;
  LabelMap::SpacingType sp;
  LabelMap::DirectionType dir;
  for (int i = 0; i < 3; ++i) {
    o[i] = origin[i];
    dir[i][0] = row[i];
    dir[i][1] = col[i];
    dir[i][2] = normal[i];
  }
  sp[0] = g.pixel_spacing[1];
  sp[1] = g.pixel_spacing[0];
  sp[2] = step;
  labels->SetOrigin(o);
  labels->SetSpacing(sp);
  labels->SetDirection(dir);
  return labels;
}

// The frames' samples: bit-packed for BINARY, else 8 or 16 bits each.
struct FramePixels {
  const Uint8* bytes = nullptr;
  std::size_t plane = 0;
  bool binary = false;
  Uint16 bits_allocated = 0;

  unsigned operator()(std::size_t f, std::size_t i) const {
    const std::size_t bit = f * plane + i;
    if (binary) return (bytes[bit >> 3] >> (bit & 7)) & 1u;
    if (bits_allocated == 16) return reinterpret_cast<const Uint16*>(bytes)[bit];
    return bytes[bit];
  }
};

FramePixels read_pixels(DcmDataset& ds, const SegLayout& layout, std::size_t frames, const std::string& where) {
  FramePixels px;
  px.plane = static_cast<std::size_t>(layout.rows) * layout.columns;
  px.binary = layout.binary;
  px.bits_allocated = layout.bits_allocated;
  DcmElement* pixel_element = nullptr;
  if (ds.findAndGetElement(DCM_PixelData, pixel_element).bad() || !pixel_element)
    throw DicomError(where + ": no Pixel Data");
  Uint8* bytes = nullptr;
  if (pixel_element->getUint8Array(bytes).bad() || !bytes) {
    Uint16* words = nullptr;
    if (pixel_element->getUint16Array(words).bad() || !words) throw DicomError(where + ": unreadable Pixel Data");
    bytes = reinterpret_cast<Uint8*>(words);
  }
  px.bytes = bytes;
  const std::size_t needed =
      px.binary ? (px.plane * frames + 7) / 8 : px.plane * frames * (layout.bits_allocated / 8);
  if (pixel_element->getLength() < needed)
    throw DicomError(fmt::format("{}: Pixel Data holds {} bytes, {} frames need {}", where, pixel_element->getLength(),
                                 frames, needed));
  return px;
}

// A zeroed image on the grid of `labels`.
template <typename TImage>
typename TImage::Pointer blank_like(const LabelMap::Pointer& labels) {
  auto m = TImage::New();
  m->CopyInformation(labels);
  m->SetRegions(labels->GetLargestPossibleRegion());
  m->Allocate(true);
  return m;
}

// The frames' pixel data, read back into segments.
struct SegFrames {
  const std::vector<FrameInfo>& info;
  const std::vector<long>& slice_of_frame;
  const SegmentIndex& segment_index;
  const FramePixels& pixels;
};

// LABELMAP: each pixel value is a segment number.
void fill_labelmap(DcmDataset& ds, const SegFrames& in, ReadSegResult& r, const std::string& where) {
  const std::size_t plane = in.pixels.plane;
  std::uint16_t* out = r.labels->GetBufferPointer();
  Uint16 padding = 0;
  const bool has_padding = ds.findAndGetUint16(DCM_PixelPaddingValue, padding).good();
  for (std::size_t f = 0; f < in.info.size(); ++f) {
    std::uint16_t* slice = out + static_cast<std::size_t>(in.slice_of_frame[f]) * plane;
    for (std::size_t i = 0; i < plane; ++i) {
      const unsigned v = in.pixels(f, i);
      if (v == 0 || (has_padding && v == padding)) continue;
      const auto it = in.segment_index.find(static_cast<int>(v));
      if (it == in.segment_index.end())
        throw DicomError(fmt::format("{}: frame {} holds value {}, which is no segment", where, f + 1, v));
      slice[i] = static_cast<std::uint16_t>(r.segments[it->second].label);
    }
  }
}

// BINARY: one mask per frame and segment. Frames in segment-number order: where segments
// overlap, the highest number wins, and one mask per segment is given too.
void fill_binary(const SegFrames& in, ReadSegResult& r) {
  const std::size_t plane = in.pixels.plane;
  std::uint16_t* out = r.labels->GetBufferPointer();
  std::vector<std::size_t> order(in.info.size());
  for (std::size_t f = 0; f < order.size(); ++f) order[f] = f;
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return in.info[a].segment < in.info[b].segment; });
  for (const std::size_t f : order) {
    const auto value = static_cast<std::uint16_t>(r.segments[in.segment_index.at(in.info[f].segment)].label);
    std::uint16_t* slice = out + static_cast<std::size_t>(in.slice_of_frame[f]) * plane;
    for (std::size_t i = 0; i < plane; ++i)
      if (in.pixels(f, i)) {
        if (slice[i] != 0 && slice[i] != value) r.overlapping = true;
        slice[i] = value;
      }
  }
  if (!r.overlapping) return;
  for (std::size_t s = 0; s < r.segments.size(); ++s) r.masks.push_back(blank_like<LabelMap>(r.labels));
  for (std::size_t f = 0; f < in.info.size(); ++f) {
    std::uint16_t* slice = r.masks[in.segment_index.at(in.info[f].segment)]->GetBufferPointer() +
                           static_cast<std::size_t>(in.slice_of_frame[f]) * plane;
    for (std::size_t i = 0; i < plane; ++i)
      if (in.pixels(f, i)) slice[i] = 1;
  }
  r.warnings.push_back("segments overlap: the label map keeps the highest segment number where they do; "
                       "one mask per segment is given too");
}

// FRACTIONAL: one map of fractions per segment; the label map holds the segment with the highest
// fraction where it is at least 0.5.
void fill_fractional(DcmDataset& ds, const SegFrames& in, ReadSegResult& r) {
  const std::size_t plane = in.pixels.plane;
  Uint16 max_value = 255;
  ds.findAndGetUint16(DCM_MaximumFractionalValue, max_value);
  if (max_value == 0) max_value = 255;
  for (std::size_t s = 0; s < r.segments.size(); ++s) r.fractions.push_back(blank_like<Image>(r.labels));
  for (std::size_t f = 0; f < in.info.size(); ++f) {
    float* slice = r.fractions[in.segment_index.at(in.info[f].segment)]->GetBufferPointer() +
                   static_cast<std::size_t>(in.slice_of_frame[f]) * plane;
    for (std::size_t i = 0; i < plane; ++i) slice[i] = static_cast<float>(in.pixels(f, i)) / max_value;
  }
  std::uint16_t* out = r.labels->GetBufferPointer();
  const std::size_t total = plane * r.labels->GetLargestPossibleRegion().GetSize()[2];
  for (std::size_t i = 0; i < total; ++i) {
    float best = 0.5f;
    for (std::size_t s = 0; s < r.fractions.size(); ++s) {
      const float v = r.fractions[s]->GetBufferPointer()[i];
      if (v >= best) {
        best = v;
        out[i] = static_cast<std::uint16_t>(r.segments[s].label);
      }
    }
  }
}

}  // namespace

bool is_seg_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec) || !detail::nesting_problem(path).empty()) return false;
  DcmFileFormat file;
  if (file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, 256, ERM_autoDetect).bad()) return false;
  OFString sop_class;
  file.getDataset()->findAndGetOFString(DCM_SOPClassUID, sop_class);
  return sop_class == kSegmentationStorage || sop_class == kLabelMapSegmentationStorage;
}

ReadSegResult read_seg(const fs::path& path, const ReadSegOptions& options) {
  register_codecs();
  const std::string where = path.string();
  DcmFileFormat file;
  load_seg(file, path, where);
  DcmDataset& ds = *file.getDataset();

  ReadSegResult r;
  read_identity(ds, r);
  const SegLayout layout = read_layout(ds, r.segmentation_type, where);
  const SegmentIndex segment_index = read_segments(ds, options, where, r.segments);
  const FrameGroups groups = read_frames(ds, layout, segment_index, where);
  read_references(ds, groups.info, r);

  // The grid: the reference series' when given, else the stack the frames describe.
  std::vector<long> slice_of_frame(groups.info.size());
  r.labels = options.reference_grid
                 ? grid_of_reference(options, layout, groups.info, r.frame_of_reference_uid, where, slice_of_frame)
                 : grid_of_frames(groups, layout, where, slice_of_frame);
  r.labels->Allocate(true);

  const FramePixels pixels = read_pixels(ds, layout, groups.info.size(), where);
  const SegFrames frames{groups.info, slice_of_frame, segment_index, pixels};
  if (layout.labelmap)
    fill_labelmap(ds, frames, r, where);
  else if (layout.binary)
    fill_binary(frames, r);
  else
    fill_fractional(ds, frames, r);
  return r;
}

}  // namespace sagitta::dicom

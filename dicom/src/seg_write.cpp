// DICOM SEG writing with DCMTK's dcmseg: the IOD classes build the segmentation image, segment,
// multi-frame functional group and dimension modules; the few attributes dcmseg leaves to the
// caller (referenced series, copied patient/study data) are added with dcmdata afterwards.
#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcvrobow.h>
#include <dcmtk/dcmdata/dcvrus.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmiod/cielabutil.h>
#include <dcmtk/dcmiod/iodmacro.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <memory>

#include "dicom_output.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/seg.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;
using detail::ds;

namespace {

// SCT "Tissue": true of anything a model segments; used when a label carries no codes.
const CodedConcept kTissue{"85756007", "SCT", "Tissue"};
// DCM "Artificial Intelligence" (CID 7162, algorithm families).
const CodedConcept kArtificialIntelligence{"123110", "DCM", "Artificial Intelligence"};
constexpr const char* kLabelMapSegmentationStorage = "1.2.840.10008.5.1.4.1.1.66.7";

void check(const OFCondition& c, const fs::path& out, const std::string& what) {
  if (c.bad()) throw DicomError(fmt::format("{}: cannot build the SEG ({}: {})", out.string(), what, c.text()));
}

CodeSequenceMacro code(const CodedConcept& c) { return CodeSequenceMacro(c.value, c.scheme, c.meaning); }

// Fills one frame (rows*columns bytes) for a segment index and slice; returns false when empty.
using FrameFiller = std::function<bool(std::size_t segment, std::size_t slice, Uint8* frame)>;

std::unique_ptr<DcmSegmentation> create_segmentation(bool fractional, Uint16 rows, Uint16 columns,
                                                     const fs::path& out, const SegWriteOptions& options) {
  IODGeneralEquipmentModule::EquipmentInfo equipment("Sagitta", options.algorithm_name, "1", options.software_version);
  ContentIdentificationMacro content;
  detail::set_content_identification(content, options.content_label, detail::fit_text(options.content_description, 64),
                                     options.algorithm_name);
  DcmSegmentation* raw = nullptr;
  const OFCondition created =
      fractional ? DcmSegmentation::createFractionalSegmentation(raw, rows, columns, DcmSegTypes::SFT_PROBABILITY, 255,
                                                                  equipment, content)
                 : DcmSegmentation::createBinarySegmentation(raw, rows, columns, equipment, content);
  check(created, out, "create");
  return std::unique_ptr<DcmSegmentation>(raw);
}

// Patient, study and frame of reference from the source; a new series and instance.
void set_series_and_instance(DcmSegmentation& seg, const SeriesInfo& source, const fs::path& out,
                             const SegWriteOptions& options) {
  {
    DcmFileFormat src;
    detail::source_dataset(src, source);
    check(seg.importFromSourceImage(*src.getDataset()), out, "import patient and study");
  }
  const int series_number = detail::derived_series_number(options.series_number, source, 1000);
  check(seg.getSeries().setSeriesInstanceUID(detail::new_uid(SITE_SERIES_UID_ROOT)), out, "series UID");
  check(seg.getSeries().setSeriesNumber(std::to_string(series_number)), out, "series number");
  check(seg.getSeries().setSeriesDescription(detail::fit_text(options.series_description, 64), false), out,
        "series description");
  check(seg.getSeries().setSeriesDate(detail::dicom_date()), out, "series date");
  check(seg.getSeries().setSeriesTime(detail::dicom_time()), out, "series time");
  check(seg.getSOPCommon().setSOPInstanceUID(detail::new_uid(SITE_INSTANCE_UID_ROOT)), out, "instance UID");
  // All text is UTF-8 (dcmiod checks values against this on writing); save_iod drops the
  // declaration again when everything turns out to be ASCII.
  check(seg.getSOPCommon().setSpecificCharacterSet("ISO_IR 192"), out, "character set");
  check(seg.getGeneralImage().setContentDate(detail::dicom_date()), out, "content date");
  check(seg.getGeneralImage().setContentTime(detail::dicom_time()), out, "content time");
}

void add_segment(DcmSegmentation& seg, const SegmentDescription& d, const fs::path& out,
                 const SegWriteOptions& options) {
  DcmSegment* segment = nullptr;
  // Created with ASCII stand-ins, then given the real (UTF-8) texts: dcmseg's value check knows
  // only the default repertoire, and the object declares ISO_IR 192. SegmentAlgorithmName has no
  // setter, so it is the model's name when that is plain ASCII (else a stand-in; the algorithm
  // identification below always names the model).
  const std::string algorithm_name = detail::fit_text(options.algorithm_name, 64);
  const bool ascii = !algorithm_name.empty() && std::all_of(algorithm_name.begin(), algorithm_name.end(), [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f && c != '\\';
  });
  check(DcmSegment::create(segment, "segment", code(d.category.empty() ? kTissue : d.category),
                           code(d.type.empty() ? kTissue : d.type), DcmSegTypes::SAT_AUTOMATIC,
                           OFString(ascii ? algorithm_name.c_str() : "Sagitta model")),
        out, "segment " + d.name);
  std::unique_ptr<DcmSegment> owned(segment);
  check(segment->setSegmentLabel(detail::fit_text(d.name.empty() ? fmt::format("label {}", d.label) : d.name, 64), false),
        out, "segment label");
  double L = 0, a = 0, b = 0;
  IODCIELabUtil::rgb2DicomLab(L, a, b, d.color[0] / 255.0, d.color[1] / 255.0, d.color[2] / 255.0);
  check(segment->setRecommendedDisplayCIELabValue(static_cast<Uint16>(std::lround(L)), static_cast<Uint16>(std::lround(a)),
                                                  static_cast<Uint16>(std::lround(b))),
        out, "segment colour");
  AlgorithmIdentificationMacro& algorithm = segment->getSegmentationAlgorithmIdentification();
  algorithm.getAlgorithmFamilyCode().set(kArtificialIntelligence.value, kArtificialIntelligence.scheme,
                                         kArtificialIntelligence.meaning);
  check(algorithm.setAlgorithmName(detail::fit_text(options.algorithm_name, 64), false), out, "algorithm name");
  check(algorithm.setAlgorithmVersion(detail::fit_text(options.algorithm_version, 64), false), out, "algorithm version");
  Uint16 number = 0;
  check(seg.addSegment(segment, number), out, "add segment " + d.name);
  owned.release();
}

// Shared functional groups: orientation and pixel measures of the source grid.
void add_shared_groups(DcmSegmentation& seg, const itk::ImageBase<3>& image, const fs::path& out) {
  const auto& dir = image.GetDirection();
  const auto& spacing = image.GetSpacing();
  std::unique_ptr<FGPlaneOrientationPatient> orientation(FGPlaneOrientationPatient::createMinimal(
      ds(dir[0][0]), ds(dir[1][0]), ds(dir[2][0]), ds(dir[0][1]), ds(dir[1][1]), ds(dir[2][1])));
  if (!orientation) throw DicomError(out.string() + ": cannot build the plane orientation");
  check(seg.addForAllFrames(*orientation), out, "plane orientation");
  FGPixelMeasures measures;
  check(measures.setPixelSpacing(ds(spacing[1]) + "\\" + ds(spacing[0])), out, "pixel spacing");
  check(measures.setSliceThickness(ds(spacing[2])), out, "slice thickness");
  check(measures.setSpacingBetweenSlices(ds(spacing[2])), out, "spacing between slices");
  check(seg.addForAllFrames(measures), out, "pixel measures");
}

// Frames are indexed by (segment, position): the dimension organisation viewers expect.
void add_dimensions(DcmSegmentation& seg, const fs::path& out) {
  const std::string dimension_uid = detail::new_uid(SITE_INSTANCE_UID_ROOT);
  check(seg.getDimensions().addDimensionIndex(DCM_ReferencedSegmentNumber, dimension_uid, DCM_SegmentIdentificationSequence,
                                              "ReferencedSegmentNumber"),
        out, "dimension index");
  check(seg.getDimensions().addDimensionIndex(DCM_ImagePositionPatient, dimension_uid, DCM_PlanePositionSequence,
                                              "ImagePositionPatient"),
        out, "dimension index");
}

// Per-slice groups, built once and shared by every segment's frame on that slice.
struct SliceGroups {
  std::vector<std::unique_ptr<FGPlanePosPatient>> positions;
  std::vector<std::unique_ptr<FGDerivationImage>> derivations;
};

SliceGroups slice_groups(const itk::ImageBase<3>& image, const SeriesInfo& source, const fs::path& out) {
  const std::size_t slice_count = image.GetLargestPossibleRegion().GetSize()[2];
  const auto& slices = source.slices.front();
  SliceGroups groups;
  groups.positions.resize(slice_count);
  groups.derivations.resize(slice_count);
  for (std::size_t k = 0; k < slice_count; ++k) {
    itk::Index<3> index{{0, 0, static_cast<itk::IndexValueType>(k)}};
    itk::Point<double, 3> p;
    image.TransformIndexToPhysicalPoint(index, p);
    groups.positions[k].reset(FGPlanePosPatient::createMinimal(ds(p[0]), ds(p[1]), ds(p[2])));
    OFVector<ImageSOPInstanceReferenceMacro> refs(1);
    check(refs[0].setReferencedSOPClassUID(slices[k].sop_class_uid), out, "source SOP class");
    check(refs[0].setReferencedSOPInstanceUID(slices[k].sop_instance_uid), out, "source SOP instance");
    if (slices[k].frame > 0) refs[0].addReferencedFrameNumber(static_cast<Uint16>(slices[k].frame));
    groups.derivations[k].reset(DcmSegmentation::createDerivationImageFG(refs, ""));
    if (!groups.positions[k] || !groups.derivations[k]) throw DicomError(out.string() + ": cannot build per-frame groups");
  }
  return groups;
}

// One frame per segment and slice that `fill` finds non-empty; counts them in the result.
SegWriteResult add_frames(DcmSegmentation& seg, const SliceGroups& groups, std::size_t segment_count,
                          std::size_t frame_pixels, const fs::path& out, const FrameFiller& fill) {
  SegWriteResult result;
  result.frames_per_segment.assign(segment_count, 0);
  std::vector<Uint8> frame(frame_pixels);
  FGFrameContent frame_content;
  for (std::size_t s = 0; s < segment_count; ++s) {
    for (std::size_t k = 0; k < groups.positions.size(); ++k) {
      if (!fill(s, k, frame.data())) continue;  // empty frames are not stored
      check(frame_content.setDimensionIndexValues(static_cast<Uint32>(s + 1), 0), out, "frame content");
      check(frame_content.setDimensionIndexValues(static_cast<Uint32>(k + 1), 1), out, "frame content");
      OFVector<FGBase*> frame_groups;
      frame_groups.push_back(&frame_content);
      frame_groups.push_back(groups.positions[k].get());
      frame_groups.push_back(groups.derivations[k].get());
      check(seg.addFrame(frame.data(), static_cast<Uint16>(s + 1), frame_groups), out, "add frame");
      ++result.frames_per_segment[s];
      ++result.frames;
    }
  }
  return result;
}

// `finish` (optional) edits the dataset dcmseg wrote before the source's attributes are added.
SegWriteResult write_common(bool fractional, const itk::ImageBase<3>& image, const itk::ImageBase<3>& source_grid,
                            const SeriesInfo& source, const std::vector<SegmentDescription>& segments,
                            const fs::path& out, const SegWriteOptions& options, const FrameFiller& fill,
                            const std::function<void(DcmItem&)>& finish = {}) {
  register_codecs();  // silences dcmseg's logging: failures reach the caller once, as DicomError
  detail::check_on_source_grid(image, source_grid, source, out.string());
  if (segments.empty()) throw DicomError(out.string() + ": no segments to write");
  const auto size = image.GetLargestPossibleRegion().GetSize();
  if (size[0] > 65535 || size[1] > 65535) throw DicomError(out.string() + ": slices larger than 65535 pixels");
  const auto columns = static_cast<Uint16>(size[0]), rows = static_cast<Uint16>(size[1]);

  const std::unique_ptr<DcmSegmentation> seg = create_segmentation(fractional, rows, columns, out, options);
  set_series_and_instance(*seg, source, out, options);
  for (const auto& d : segments) add_segment(*seg, d, out, options);  // numbered 1..n in this order
  add_shared_groups(*seg, image, out);
  add_dimensions(*seg, out);
  const SliceGroups groups = slice_groups(image, source, out);
  SegWriteResult result =
      add_frames(*seg, groups, segments.size(), static_cast<std::size_t>(rows) * columns, out, fill);
  if (result.frames == 0)
    throw DicomError(out.string() + ": the label map holds none of the described labels; nothing to write");

  const detail::DerivedUids uids = detail::save_iod(
      *seg,
      [&](DcmItem& dataset) {
        check(seg->writeDataset(dataset), out, "write");
        if (finish) finish(dataset);
      },
      source, out);
  result.sop_instance_uid = uids.sop_instance_uid;
  result.series_instance_uid = uids.series_instance_uid;
  result.notes = uids.notes;
  return result;
}

// Which described labels each slice holds (in_slice[k][segment index]), from one pass.
std::vector<std::vector<bool>> labels_per_slice(const LabelMap& labels, const std::vector<int>& segment_index,
                                                std::size_t segment_count) {
  const auto size = labels.GetLargestPossibleRegion().GetSize();
  const std::size_t plane = size[0] * size[1];
  std::vector<std::vector<bool>> in_slice(size[2], std::vector<bool>(segment_count, false));
  for (std::size_t k = 0; k < size[2]; ++k) {
    const std::uint16_t* slice = labels.GetBufferPointer() + k * plane;
    std::uint16_t last = 0;
    for (std::size_t i = 0; i < plane; ++i)
      if (slice[i] != 0 && slice[i] != last) {
        last = slice[i];
        in_slice[k][static_cast<std::size_t>(segment_index[last])] = true;
      }
  }
  return in_slice;
}

void remove_segment_identification(DcmItem& groups) {
  groups.findAndDeleteElement(DCM_SegmentIdentificationSequence);
}

// LABELMAP (Supplement 243, Label Map Segmentation Storage), which dcmseg 3.6.7 does not know:
// dcmseg builds the common SEG modules with one placeholder frame per non-empty slice, and the
// dataset is then turned into a label map: new SOP class, 8- or 16-bit frames whose pixels are
// segment numbers, no per-frame segment identification, one dimension (the plane position), and
// the segments' colours as a PALETTE COLOR lookup table (entry = segment number).
SegWriteResult write_labelmap(const LabelMap& labels, const itk::ImageBase<3>& source_grid, const SeriesInfo& source,
                              const std::vector<SegmentDescription>& segments, const std::vector<int>& segment_index,
                              const std::vector<std::vector<bool>>& in_slice, const fs::path& out,
                              const SegWriteOptions& options) {
  const auto size = labels.GetLargestPossibleRegion().GetSize();
  const std::size_t plane = size[0] * size[1];
  std::vector<std::size_t> slices;
  std::vector<std::size_t> per_segment(segments.size(), 0);
  for (std::size_t k = 0; k < size[2]; ++k) {
    bool any = false;
    for (std::size_t s = 0; s < segments.size(); ++s)
      if (in_slice[k][s]) {
        any = true;
        ++per_segment[s];
      }
    if (any) slices.push_back(k);
  }
  const std::size_t numbers = segments.size();  // segment numbers 1..n
  const bool wide = numbers > 255;
  auto finish = [&](DcmItem& ds) {
    check(ds.putAndInsertString(DCM_SOPClassUID, kLabelMapSegmentationStorage), out, "SOP class");
    check(ds.putAndInsertString(DCM_SegmentationType, "LABELMAP"), out, "segmentation type");
    const Uint16 bits = wide ? 16 : 8;
    check(ds.putAndInsertUint16(DCM_BitsAllocated, bits), out, "bits allocated");
    check(ds.putAndInsertUint16(DCM_BitsStored, bits), out, "bits stored");
    check(ds.putAndInsertUint16(DCM_HighBit, static_cast<Uint16>(bits - 1)), out, "high bit");
    check(ds.putAndInsertUint16(DCM_PixelRepresentation, 0), out, "pixel representation");
    check(ds.putAndInsertString(DCM_PhotometricInterpretation, "PALETTE COLOR"), out, "photometric interpretation");
    // Palette: entry v is segment v's colour (16-bit entries), entry 0 black.
    const Uint16 entries = static_cast<Uint16>(numbers + 1);
    const DcmTagKey descriptors[3] = {DCM_RedPaletteColorLookupTableDescriptor, DCM_GreenPaletteColorLookupTableDescriptor,
                                      DCM_BluePaletteColorLookupTableDescriptor};
    const DcmTagKey tables[3] = {DCM_RedPaletteColorLookupTableData, DCM_GreenPaletteColorLookupTableData,
                                 DCM_BluePaletteColorLookupTableData};
    for (int c = 0; c < 3; ++c) {
      auto* descriptor = new DcmUnsignedShort(DcmTag(descriptors[c], EVR_US));
      const Uint16 d[3] = {entries, 0, 16};
      descriptor->putUint16Array(d, 3);
      check(ds.insert(descriptor, true), out, "palette descriptor");
      std::vector<Uint16> lut(entries, 0);
      for (std::size_t s = 0; s < numbers; ++s) lut[s + 1] = static_cast<Uint16>(segments[s].color[c] * 257);
      auto* table = new DcmOtherByteOtherWord(DcmTag(tables[c], EVR_OW));
      table->putUint16Array(lut.data(), entries);
      check(ds.insert(table, true), out, "palette table");
    }
    // Pixels: segment numbers, one frame per listed slice.
    std::vector<Uint8> bytes(slices.size() * plane * (wide ? 2 : 1));
    for (std::size_t f = 0; f < slices.size(); ++f) {
      const std::uint16_t* slice = labels.GetBufferPointer() + slices[f] * plane;
      for (std::size_t i = 0; i < plane; ++i) {
        const int index = slice[i] ? segment_index[slice[i]] : -1;
        const Uint16 number = static_cast<Uint16>(index + 1);
        if (wide) {
          bytes[(f * plane + i) * 2] = static_cast<Uint8>(number & 0xff);
          bytes[(f * plane + i) * 2 + 1] = static_cast<Uint8>(number >> 8);
        } else {
          bytes[f * plane + i] = static_cast<Uint8>(number);
        }
      }
    }
    if (wide) {
      check(ds.putAndInsertUint16Array(DCM_PixelData, reinterpret_cast<const Uint16*>(bytes.data()),
                                       static_cast<unsigned long>(bytes.size() / 2)),
            out, "pixel data");
    } else {
      check(ds.putAndInsertUint8Array(DCM_PixelData, bytes.data(), static_cast<unsigned long>(bytes.size())), out,
            "pixel data");
    }
    // Frames are indexed by position only.
    DcmItem* shared = nullptr;
    if (ds.findAndGetSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).good() && shared)
      remove_segment_identification(*shared);
    DcmSequenceOfItems* per_frame = nullptr;
    if (ds.findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, per_frame).good() && per_frame)
      for (unsigned long f = 0; f < per_frame->card(); ++f) {
        DcmItem* item = per_frame->getItem(f);
        remove_segment_identification(*item);
        DcmItem* content = nullptr;
        if (item->findAndGetSequenceItem(DCM_FrameContentSequence, content, 0).good() && content) {
          Uint32 position = 0;
          content->findAndGetUint32(DCM_DimensionIndexValues, position, 1);
          check(content->putAndInsertUint32(DCM_DimensionIndexValues, position), out, "dimension index values");
        }
      }
    DcmSequenceOfItems* dimensions = nullptr;
    if (ds.findAndGetSequence(DCM_DimensionIndexSequence, dimensions).good() && dimensions && dimensions->card() == 2)
      delete dimensions->remove(0UL);
  };
  std::size_t next = 0;  // placeholder frames: segment 1, the listed slices in order
  SegWriteResult result = write_common(
      false, labels, source_grid, source, segments, out, options,
      [&](std::size_t s, std::size_t k, Uint8* frame) {
        if (s != 0 || next >= slices.size() || slices[next] != k) return false;
        ++next;
        std::fill(frame, frame + plane, Uint8{0});
        return true;
      },
      finish);
  result.frames_per_segment = per_segment;
  return result;
}

}  // namespace

SegWriteResult write_seg(const LabelMap& labels, const itk::ImageBase<3>& source_grid, const SeriesInfo& source,
                         const std::vector<SegmentDescription>& segments, const fs::path& out,
                         const SegWriteOptions& options) {
  // Every non-zero voxel value must be described: a SEG that silently drops a label would look
  // complete in a PACS while missing a structure.
  const std::vector<int> segment_index = detail::segment_index_of_labels(labels, segments, out.string());
  const auto size = labels.GetLargestPossibleRegion().GetSize();
  const std::size_t plane = size[0] * size[1];
  const std::uint16_t* voxels = labels.GetBufferPointer();

  const auto in_slice = labels_per_slice(labels, segment_index, segments.size());
  if (options.type == SegType::Labelmap)
    return write_labelmap(labels, source_grid, source, segments, segment_index, in_slice, out, options);
  return write_common(false, labels, source_grid, source, segments, out, options,
                      [&](std::size_t s, std::size_t k, Uint8* frame) {
                        if (!in_slice[k][s]) return false;
                        const auto value = static_cast<std::uint16_t>(segments[s].label);
                        const std::uint16_t* slice = voxels + k * plane;
                        bool any = false;
                        for (std::size_t i = 0; i < plane; ++i) {
                          const bool on = slice[i] == value;
                          frame[i] = on;
                          any |= on;
                        }
                        return any;
                      });
}

SegWriteResult write_fractional_seg(const std::vector<Image::Pointer>& probabilities, const itk::ImageBase<3>& source_grid,
                                    const SeriesInfo& source, const std::vector<SegmentDescription>& segments,
                                    const fs::path& out, const SegWriteOptions& options) {
  if (probabilities.size() != segments.size() || probabilities.empty())
    throw DicomError(fmt::format("{}: {} probability maps for {} segments", out.string(), probabilities.size(),
                                 segments.size()));
  for (const auto& p : probabilities) detail::check_on_source_grid(*p, source_grid, source, out.string());
  const auto size = probabilities.front()->GetLargestPossibleRegion().GetSize();
  const std::size_t plane = size[0] * size[1];
  return write_common(true, *probabilities.front(), source_grid, source, segments, out, options,
                      [&](std::size_t s, std::size_t k, Uint8* frame) {
                        const float* slice = probabilities[s]->GetBufferPointer() + k * plane;
                        bool any = false;
                        for (std::size_t i = 0; i < plane; ++i) {
                          const float p = std::clamp(slice[i], 0.0f, 1.0f);
                          frame[i] = static_cast<Uint8>(std::lround(p * 255.0f));
                          any |= frame[i] != 0;
                        }
                        return any;
                      });
}

}  // namespace sagitta::dicom

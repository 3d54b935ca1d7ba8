// JPEG 2000 decoder for DCMTK's codec list, backed by OpenJPEG. See j2k_codec.h.
// This file is the DCMTK side: the Image Pixel attributes, which fragments form which frame, the
// codec class and its registration; one codestream is decoded in j2k_codestream.cpp.
//
// Design notes:
// - All state of one decode (OpenJPEG codec, stream, messages) lives on the stack of that call; the
//   codec object itself is immutable, so concurrent decodes of different datasets are safe.
// - OpenJPEG runs in strict mode and the codestream header is checked against the DICOM
//   attributes before any sample buffer is allocated (see j2k_codestream.cpp).
#include "j2k_codec.h"

#include <dcmtk/config/osconfig.h>  // must precede the other DCMTK headers
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcerror.h>
#include <dcmtk/dcmdata/dcitem.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcstack.h>
#include <dcmtk/dcmdata/dcswap.h>
#include <dcmtk/dcmdata/dcvrpobw.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/oflog/oflog.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "j2k_codestream.h"

namespace sagitta::dicom::detail {
namespace {

using namespace j2k;

// ---------------------------------------------------------------------------------------------
// What the DICOM header says about the decoded image.

OFCondition read_pixel_info(DcmItem& item, PixelInfo& info) {
  struct Required {
    DcmTagKey tag;
    Uint16& value;
    const char* name;
  };
  const Required required[] = {
      {DCM_Rows, info.rows, "Rows"},
      {DCM_Columns, info.columns, "Columns"},
      {DCM_SamplesPerPixel, info.samples_per_pixel, "SamplesPerPixel"},
      {DCM_BitsAllocated, info.bits_allocated, "BitsAllocated"},
      {DCM_BitsStored, info.bits_stored, "BitsStored"},
      {DCM_PixelRepresentation, info.pixel_representation, "PixelRepresentation"},
  };
  for (const auto& r : required)
    if (item.findAndGetUint16(r.tag, r.value).bad())
      return make_error(kCodeMismatch, std::string("JPEG 2000 decoder: missing ") + r.name);
  if (item.findAndGetOFString(DCM_PhotometricInterpretation, info.photometric).bad())
    return make_error(kCodeMismatch, "JPEG 2000 decoder: missing PhotometricInterpretation");

  // NumberOfFrames is optional; absent (or the invalid value 0) means a single frame.
  Sint32 frames = 1;
  if (item.findAndGetSint32(DCM_NumberOfFrames, frames).bad() || frames == 0) frames = 1;
  if (frames < 0) return make_error(kCodeMismatch, "JPEG 2000 decoder: negative NumberOfFrames");
  info.frames = Uint32(frames);

  if (info.rows == 0 || info.columns == 0)
    return make_error(kCodeMismatch, "JPEG 2000 decoder: Rows or Columns is zero");
  if (info.samples_per_pixel != 1 && info.samples_per_pixel != 3)
    return make_error(kCodeUnsupported, "JPEG 2000 decoder: SamplesPerPixel " +
                                            std::to_string(info.samples_per_pixel) +
                                            " is not supported (only 1 or 3)");
  if (info.bits_allocated != 8 && info.bits_allocated != 16)
    return make_error(kCodeUnsupported, "JPEG 2000 decoder: BitsAllocated " +
                                            std::to_string(info.bits_allocated) +
                                            " is not supported (only 8 or 16)");
  if (info.bits_stored == 0 || info.bits_stored > info.bits_allocated)
    return make_error(kCodeMismatch, "JPEG 2000 decoder: BitsStored " +
                                         std::to_string(info.bits_stored) +
                                         " does not fit BitsAllocated " +
                                         std::to_string(info.bits_allocated));
  if (info.pixel_representation > 1)
    return make_error(kCodeMismatch, "JPEG 2000 decoder: invalid PixelRepresentation");
  return EC_Normal;
}

DcmItem* pixel_data_parent(const DcmStack& stack) {
  // The stack handed to a codec ends with the pixel data element; the item below it is the
  // dataset (or sequence item, for icons) that carries the Image Pixel attributes.
  DcmStack local(stack);
  local.pop();
  DcmObject* parent = local.top();
  if (!parent || (parent->ident() != EVR_dataset && parent->ident() != EVR_item)) return nullptr;
  return static_cast<DcmItem*>(parent);
}

// ---------------------------------------------------------------------------------------------
// Which pixel items (fragments) make up which frame. Item 0 is the basic offset table.

struct FrameSpan {
  unsigned long first = 0;  // index of the frame's first fragment in the pixel sequence
  unsigned long count = 0;  // number of consecutive fragments
};

// Whether a fragment begins a new JPEG 2000 image. Reads only its first bytes, so fragments of a
// file that DCMTK has not loaded yet stay on disk.
bool fragment_starts_frame(DcmPixelItem& fragment) {
  std::array<Uint8, kJp2Signature.size()> head{};
  const Uint32 length = std::min<Uint32>(fragment.getLength(), Uint32(head.size()));
  if (length < kCodestreamStart.size()) return false;
  if (fragment.getPartialValue(head.data(), 0, length).bad()) return false;
  return is_codestream_or_jp2(head.data(), length);
}

// Frame starts from the basic offset table: byte offsets of each frame's first item tag,
// counted from the first fragment's item tag. Returns false when the table is absent or unusable.
bool spans_from_offset_table(DcmPixelSequence& sequence, Uint32 frames,
                             std::vector<FrameSpan>& spans) {
  DcmPixelItem* table = nullptr;
  if (sequence.getItem(table, 0).bad() || !table) return false;
  if (table->getLength() != std::uint64_t(frames) * 4u) return false;
  Uint8* raw = nullptr;
  if (table->getUint8Array(raw).bad() || !raw) return false;

  std::vector<Uint32> offsets(frames);
  for (Uint32 f = 0; f < frames; ++f)  // little endian on the wire, whatever the host
    offsets[f] = Uint32(raw[4 * f]) | Uint32(raw[4 * f + 1]) << 8 | Uint32(raw[4 * f + 2]) << 16 |
                 Uint32(raw[4 * f + 3]) << 24;

  const unsigned long items = sequence.card();
  std::vector<FrameSpan> result;
  std::uint64_t position = 0;
  Uint32 next = 0;
  for (unsigned long index = 1; index < items; ++index) {
    if (next < frames && position == offsets[next]) {
      result.push_back({index, 0});
      ++next;
    } else if (next < frames && position > offsets[next]) {
      return false;  // an offset points into the middle of a fragment
    }
    if (result.empty()) return false;  // the first offset must be 0
    ++result.back().count;
    DcmPixelItem* fragment = nullptr;
    if (sequence.getItem(fragment, index).bad() || !fragment) return false;
    position += std::uint64_t(fragment->getLength()) + 8u;  // item tag and length
  }
  if (next != frames) return false;
  spans = std::move(result);
  return true;
}

// Frame starts from the fragments' first bytes: a frame begins where a codestream or JP2 file
// begins. Works when the offset table is empty, as it often is.
bool spans_from_markers(DcmPixelSequence& sequence, unsigned long first_index, Uint32 wanted,
                        std::vector<FrameSpan>& spans) {
  const unsigned long items = sequence.card();
  std::vector<FrameSpan> result;
  for (unsigned long index = first_index; index < items; ++index) {
    DcmPixelItem* fragment = nullptr;
    if (sequence.getItem(fragment, index).bad() || !fragment) return false;
    if (fragment_starts_frame(*fragment)) {
      if (result.size() == wanted) break;  // the frame after the last wanted one begins here
      result.push_back({index, 0});
    } else if (result.empty()) {
      return false;  // the first fragment must start a codestream
    }
    ++result.back().count;
  }
  if (result.size() != wanted) return false;
  spans = std::move(result);
  return true;
}

OFCondition map_all_frames(DcmPixelSequence& sequence, Uint32 frames,
                           std::vector<FrameSpan>& spans) {
  const unsigned long fragments = sequence.card() > 0 ? sequence.card() - 1 : 0;
  spans.clear();
  if (fragments == 0)
    return make_error(kCodeFragments, "JPEG 2000 decoder: pixel data has no fragments");
  if (fragments < frames)
    return make_error(kCodeFragments, "JPEG 2000 decoder: " + std::to_string(frames) +
                                          " frames but only " + std::to_string(fragments) +
                                          " fragments");
  if (frames == 1) {
    spans.push_back({1, fragments});
    return EC_Normal;
  }
  if (fragments == frames) {
    for (Uint32 f = 0; f < frames; ++f) spans.push_back({f + 1ul, 1});
    return EC_Normal;
  }
  if (spans_from_offset_table(sequence, frames, spans)) return EC_Normal;
  if (spans_from_markers(sequence, 1, frames, spans)) return EC_Normal;
  return make_error(kCodeFragments, "JPEG 2000 decoder: cannot assign " +
                                        std::to_string(fragments) + " fragments to " +
                                        std::to_string(frames) +
                                        " frames (no usable offset table, no codestream markers)");
}

// Decodes the frame made of the given fragments. A frame in one fragment is decoded in place;
// a frame split over several is joined first, since OpenJPEG needs one contiguous stream.
OFCondition decode_frame(DcmPixelSequence& sequence, const FrameSpan& span, const PixelInfo& info,
                         Uint32 frame, Uint8* out) {
  std::vector<Uint8> joined;
  const Uint8* data = nullptr;
  std::size_t size = 0;
  for (unsigned long i = 0; i < span.count; ++i) {
    DcmPixelItem* fragment = nullptr;
    Uint8* bytes = nullptr;
    if (sequence.getItem(fragment, span.first + i).bad() || !fragment ||
        fragment->getUint8Array(bytes).bad())
      return make_error(kCodeFragments, "JPEG 2000 decoder, " + frame_label(frame) +
                                            ": cannot read fragment " +
                                            std::to_string(span.first + i));
    const std::size_t length = bytes ? fragment->getLength() : 0;
    if (span.count == 1) {
      data = bytes;
      size = length;
    } else {
      joined.insert(joined.end(), bytes, bytes + length);
    }
  }
  if (span.count > 1) {
    data = joined.data();
    size = joined.size();
  }
  if (!data || size == 0)
    return make_error(kCodeDecodeFailed, "JPEG 2000 decoder, " + frame_label(frame) + ": empty");
  return decode_codestream(data, size, info, frame, out);
}

// The DICOM pixel data value is a sequence of 16-bit words in host order; 8-bit samples were
// written as a little-endian byte stream, which on big-endian hosts needs the words swapped.
void bytes_to_host_words(Uint8* buffer, Uint32 even_length, Uint16 bits_allocated) {
  if (bits_allocated == 8)
    swapIfNecessary(gLocalByteOrder, EBO_LittleEndian, buffer, even_length, sizeof(Uint16));
}

// ---------------------------------------------------------------------------------------------
// The DCMTK codec.

class J2kCodecParameter : public DcmCodecParameter {
 public:
  DcmCodecParameter* clone() const override { return new J2kCodecParameter(*this); }
  const char* className() const override { return "sagitta::J2kCodecParameter"; }
};

class J2kDecoder : public DcmCodec {
 public:
  OFCondition decode(const DcmRepresentationParameter* /*fromRepParam*/,
                     DcmPixelSequence* sequence, DcmPolymorphOBOW& uncompressed,
                     const DcmCodecParameter* /*cp*/, const DcmStack& objStack,
                     OFBool& removeOldRep) const override {
    DcmItem* dataset = pixel_data_parent(objStack);
    if (!dataset || !sequence) return EC_IllegalCall;
    PixelInfo info;
    OFCondition result = read_pixel_info(*dataset, info);
    if (result.bad()) return result;

    std::vector<FrameSpan> spans;
    result = map_all_frames(*sequence, info.frames, spans);
    if (result.bad()) return result;

    const std::uint64_t frame_bytes = info.frame_bytes();
    std::uint64_t total = frame_bytes * info.frames;
    total += total & 1u;  // the value is an array of 16-bit words
    if (total >= std::numeric_limits<Uint32>::max())
      return make_error(kCodeUnsupported,
                        "JPEG 2000 decoder: decoded pixel data would exceed 4 GiB");

    Uint16* words = nullptr;
    result = uncompressed.createUint16Array(Uint32(total / 2), words);
    if (result.bad()) return result;
    auto* bytes = reinterpret_cast<Uint8*>(words);
    if (total != frame_bytes * info.frames) bytes[total - 1] = 0;  // pad byte

    for (Uint32 f = 0; f < info.frames; ++f) {
      result = decode_frame(*sequence, spans[f], info, f, bytes + f * frame_bytes);
      if (result.bad()) return result;
    }
    bytes_to_host_words(bytes, Uint32(total), info.bits_allocated);

    // The decoded image is interleaved and, after OpenJPEG undid the component transform, RGB;
    // the header must say so. The compressed representation then no longer matches the header,
    // so DCMTK must drop it.
    const OFString model = decoded_color_model(info);
    if (model != info.photometric) {
      result = dataset->putAndInsertString(DCM_PhotometricInterpretation, model.c_str());
      if (result.bad()) return result;
      removeOldRep = OFTrue;
    }
    if (info.samples_per_pixel > 1) {
      Uint16 planar = 0;
      if (dataset->findAndGetUint16(DCM_PlanarConfiguration, planar).bad() || planar != 0) {
        result = dataset->putAndInsertUint16(DCM_PlanarConfiguration, 0);
        if (result.bad()) return result;
        removeOldRep = OFTrue;
      }
    }
    return EC_Normal;
  }

  OFCondition decodeFrame(const DcmRepresentationParameter* /*fromParam*/,
                          DcmPixelSequence* sequence, const DcmCodecParameter* /*cp*/,
                          DcmItem* dataset, Uint32 frameNo, Uint32& startFragment, void* buffer,
                          Uint32 bufSize, OFString& decompressedColorModel) const override {
    if (!dataset || !sequence || !buffer) return EC_IllegalCall;
    PixelInfo info;
    OFCondition result = read_pixel_info(*dataset, info);
    if (result.bad()) return result;
    if (frameNo >= info.frames)
      return make_error(kCodeMismatch, "JPEG 2000 decoder: " + frame_label(frameNo) +
                                           " requested, image has " +
                                           std::to_string(info.frames));
    const std::uint64_t frame_bytes = info.frame_bytes();
    if (frame_bytes > bufSize)
      return make_error(kCodeMismatch, "JPEG 2000 decoder: frame buffer of " +
                                           std::to_string(bufSize) + " bytes is too small");

    FrameSpan span;
    result = locate_frame(*sequence, info.frames, frameNo, startFragment, span);
    if (result.bad()) return result;
    auto* bytes = static_cast<Uint8*>(buffer);
    result = decode_frame(*sequence, span, info, frameNo, bytes);
    // Partial access exists to keep memory low: let DCMTK drop fragments it can reload from file.
    for (unsigned long i = 0; i < span.count; ++i) {
      DcmPixelItem* fragment = nullptr;
      if (sequence->getItem(fragment, span.first + i).good() && fragment) fragment->compact();
    }
    if (result.bad()) return result;

    // Pad an odd-sized frame to whole words so the byte order fix-up sees complete words.
    Uint32 even = Uint32(frame_bytes);
    if ((even & 1u) && even < bufSize) bytes[even++] = 0;
    bytes_to_host_words(bytes, even & ~1u, info.bits_allocated);

    startFragment = Uint32(span.first + span.count);
    decompressedColorModel = decoded_color_model(info);
    return EC_Normal;
  }

  OFCondition encode(const Uint16* /*pixelData*/, const Uint32 /*length*/,
                     const DcmRepresentationParameter* /*toRepParam*/,
                     DcmPixelSequence*& /*pixSeq*/, const DcmCodecParameter* /*cp*/,
                     DcmStack& /*objStack*/, OFBool& /*removeOldRep*/) const override {
    return EC_IllegalCall;  // decoder only
  }

  OFCondition encode(const E_TransferSyntax /*fromRepType*/,
                     const DcmRepresentationParameter* /*fromRepParam*/,
                     DcmPixelSequence* /*fromPixSeq*/,
                     const DcmRepresentationParameter* /*toRepParam*/,
                     DcmPixelSequence*& /*toPixSeq*/, const DcmCodecParameter* /*cp*/,
                     DcmStack& /*objStack*/, OFBool& /*removeOldRep*/) const override {
    return EC_IllegalCall;  // no transcoding
  }

  OFBool canChangeCoding(const E_TransferSyntax oldRepType,
                         const E_TransferSyntax newRepType) const override {
    const bool from_j2k = oldRepType == EXS_JPEG2000LosslessOnly || oldRepType == EXS_JPEG2000;
    return from_j2k && DcmXfer(newRepType).isNotEncapsulated();
  }

  OFCondition determineDecompressedColorModel(const DcmRepresentationParameter* /*fromParam*/,
                                              DcmPixelSequence* /*fromPixSeq*/,
                                              const DcmCodecParameter* /*cp*/, DcmItem* dataset,
                                              OFString& decompressedColorModel) const override {
    if (!dataset) return EC_IllegalCall;
    PixelInfo info;
    if (dataset->findAndGetOFString(DCM_PhotometricInterpretation, info.photometric).bad())
      return EC_MissingAttribute;
    dataset->findAndGetUint16(DCM_SamplesPerPixel, info.samples_per_pixel);
    decompressedColorModel = decoded_color_model(info);
    return EC_Normal;
  }

 private:
  // Finds the fragments of one frame for partial access. DCMTK passes the fragment after the
  // previous frame when frames are read in order; trust it and only look for where this frame
  // ends. Otherwise map the whole sequence.
  static OFCondition locate_frame(DcmPixelSequence& sequence, Uint32 frames, Uint32 frame,
                                  Uint32 start_hint, FrameSpan& span) {
    const unsigned long fragments = sequence.card() > 0 ? sequence.card() - 1 : 0;
    if (frames == 1 && fragments >= 1) {
      span = {1, fragments};
      return EC_Normal;
    }
    if (fragments == frames) {  // the common case: one fragment per frame
      span = {frame + 1ul, 1};
      return EC_Normal;
    }
    if (start_hint > 0 && start_hint <= fragments) {
      std::vector<FrameSpan> spans;
      if (spans_from_markers(sequence, start_hint, 1, spans)) {
        span = spans.front();
        return EC_Normal;
      }
    }
    std::vector<FrameSpan> spans;
    const OFCondition result = map_all_frames(sequence, frames, spans);
    if (result.bad()) return result;
    span = spans[frame];
    return EC_Normal;
  }
};

struct Registration {
  std::mutex mutex;
  std::unique_ptr<J2kDecoder> decoder;
  std::unique_ptr<J2kCodecParameter> parameter;
};

Registration& registration() {
  static Registration instance;
  return instance;
}

}  // namespace

void register_j2k_decoder() {
  Registration& r = registration();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.decoder) return;
  auto decoder = std::make_unique<J2kDecoder>();
  auto parameter = std::make_unique<J2kCodecParameter>();
  // A decoder needs no default representation parameter (that is for choosing an encoding).
  const OFCondition result = DcmCodecList::registerCodec(decoder.get(), nullptr, parameter.get());
  if (result.bad()) {
    OFLOG_ERROR(logger(), "cannot register the JPEG 2000 decoder: " << result.text());
    return;
  }
  r.decoder = std::move(decoder);
  r.parameter = std::move(parameter);
}

void unregister_j2k_decoder() {
  Registration& r = registration();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (!r.decoder) return;
  DcmCodecList::deregisterCodec(r.decoder.get());
  r.decoder.reset();
  r.parameter.reset();
}

}  // namespace sagitta::dicom::detail

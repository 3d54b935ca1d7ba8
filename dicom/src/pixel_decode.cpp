// Decoding one file's frames into float slices: any transfer syntax DCMTK (with Sagitta's
// registered codecs) can decode, stored bits and sign, MONOCHROME1, rescale, mosaic tiles (the
// declarations and their contract: pixel_decode.h).
#include "pixel_decode.h"

#include "nesting.h"

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <type_traits>

#include "sagitta/dicom/error.h"

namespace sagitta::dicom::detail {
namespace {

constexpr Uint32 kHeaderReadLimit = 16384;

// Stored value -> integer pixel value: bits above HighBit and below the stored bits dropped,
// sign extended for signed data.
struct BitUnpacker {
  int shift = 0;
  std::uint32_t mask = 0;
  bool sign = false;
  std::int64_t sign_bit = 0;
  bool trivial = false;  // stored bits fill the allocated bits: a plain cast

  explicit BitUnpacker(const PixelFormat& f) {
    shift = f.high_bit + 1 - f.bits_stored;
    mask = f.bits_stored >= 32 ? 0xFFFFFFFFu : ((1u << f.bits_stored) - 1u);
    sign = f.pixel_signed;
    sign_bit = std::int64_t(1) << (f.bits_stored - 1);
    trivial = shift == 0 && f.bits_stored == f.bits_allocated;
  }
  std::int64_t operator()(std::uint32_t raw) const {
    std::int64_t v = (raw >> shift) & mask;
    if (sign && (v & sign_bit)) v -= sign_bit << 1;
    return v;
  }
};

template <typename TRaw, typename TSigned, typename TOut>
void convert(const std::uint8_t* buffer, const PixelFormat& f, const Frame& frame, int row0, int col0,
             TOut* out) {
  const BitUnpacker unpack(f);
  const double slope = frame.rescale_slope, intercept = frame.rescale_intercept;
  const bool invert = f.photometric == "MONOCHROME1";
  const std::int64_t min_stored = f.pixel_signed ? -(std::int64_t(1) << (f.bits_stored - 1)) : 0;
  const std::int64_t max_stored =
      f.pixel_signed ? (std::int64_t(1) << (f.bits_stored - 1)) - 1 : (std::int64_t(1) << f.bits_stored) - 1;
  // Integer outputs: exact integer arithmetic (the caller checked slope and intercept are integral).
  const auto islope = static_cast<std::int64_t>(std::llround(slope));
  const auto iintercept = static_cast<std::int64_t>(std::llround(intercept));
  const auto* pixels = reinterpret_cast<const TRaw*>(buffer);
  for (int r = 0; r < frame.rows; ++r) {
    const TRaw* src = pixels + std::size_t(row0 + r) * f.columns + col0;
    TOut* dst = out + std::size_t(r) * frame.columns;
    for (int c = 0; c < frame.columns; ++c) {
      std::int64_t v;
      if (unpack.trivial)
        v = f.pixel_signed ? std::int64_t(static_cast<TSigned>(src[c])) : std::int64_t(src[c]);
      else
        v = unpack(static_cast<std::uint32_t>(src[c]));
      // MONOCHROME1 shows low values bright; invert so that higher always means brighter.
      if (invert) v = min_stored + max_stored - v;
      if constexpr (std::is_floating_point_v<TOut>)
        dst[c] = static_cast<TOut>(double(v) * slope + intercept);
      else
        dst[c] = static_cast<TOut>(v * islope + iintercept);
    }
  }
}

}  // namespace

struct FrameReader::Impl {
  std::string path;
  DcmFileFormat file;
  DcmFileCache cache;
  DcmElement* pixels = nullptr;
  Uint32 start_fragment = 0;
  int decoded_frame = -1;  // index of the frame in `buffer`
  std::vector<std::uint8_t> buffer;
};

FrameReader::FrameReader(const std::string& path) : impl_(std::make_unique<Impl>()) {
  impl_->path = path;
  if (const auto problem = detail::nesting_problem(path); !problem.empty()) throw DicomError(path + ": " + problem);
  const OFCondition status =
      impl_->file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kHeaderReadLimit, ERM_autoDetect);
  if (status.bad()) throw DicomError(fmt::format("{}: cannot read ({})", path, status.text()));
  DcmDataset& d = *impl_->file.getDataset();
  format_ = read_pixel_format(d, path);
  if (d.findAndGetElement(DCM_PixelData, impl_->pixels).bad() || !impl_->pixels)
    throw DicomError(path + ": no pixel data");
}

FrameReader::~FrameReader() = default;

const std::uint8_t* FrameReader::decode(const Frame& frame) {
  Impl& m = *impl_;
  const int frame_index = frame.frame > 0 ? frame.frame - 1 : 0;
  if (frame_index >= format_.number_of_frames)
    throw DicomError(fmt::format("{}: frame {} requested of {}", m.path, frame.frame, format_.number_of_frames));
  if (m.decoded_frame != frame_index) {
    DcmDataset* d = m.file.getDataset();
    Uint32 frame_size = 0;
    OFCondition status = m.pixels->getUncompressedFrameSize(d, frame_size);
    if (status.bad() || frame_size == 0)
      throw DicomError(fmt::format("{}: cannot size a frame ({})", m.path, status.text()));
    m.buffer.resize(frame_size + (frame_size & 1));
    OFString color_model;
    // Frames are read in increasing order, so DCMTK can follow fragments without an offset table.
    status = m.pixels->getUncompressedFrame(d, frame_index, m.start_fragment, m.buffer.data(),
                                            static_cast<Uint32>(m.buffer.size()), color_model, &m.cache);
    if (status.bad()) {
      const DcmXfer xfer(d->getOriginalXfer());
      throw DicomError(fmt::format("{}: cannot decode frame {} ({}; transfer syntax {}): truncated or "
                                   "corrupt pixel data",
                                   m.path, frame_index + 1, status.text(), xfer.getXferName()));
    }
    m.decoded_frame = frame_index;
  }
  return m.buffer.data();
}

template <typename TOut>
void FrameReader::read(const Frame& frame, TOut* out) {
  const std::uint8_t* buffer = decode(frame);
  const Impl& m = *impl_;
  // Mosaic tiles are cut out of the decoded frame; other frames are the whole frame.
  int row0 = 0, col0 = 0;
  if (frame.mosaic_tile >= 0) {
    const int per_row = format_.columns / frame.columns;
    row0 = (frame.mosaic_tile / per_row) * frame.rows;
    col0 = (frame.mosaic_tile % per_row) * frame.columns;
  }
  if (row0 + frame.rows > format_.rows || col0 + frame.columns > format_.columns)
    throw DicomError(fmt::format("{}: frame geometry exceeds the image", m.path));
  switch (format_.bits_allocated) {
    case 8: convert<std::uint8_t, std::int8_t>(buffer, format_, frame, row0, col0, out); break;
    case 16: convert<std::uint16_t, std::int16_t>(buffer, format_, frame, row0, col0, out); break;
    case 32: convert<std::uint32_t, std::int32_t>(buffer, format_, frame, row0, col0, out); break;
    default: throw DicomError(m.path + ": unsupported BitsAllocated");
  }
}

template void FrameReader::read<float>(const Frame&, float*);
template void FrameReader::read<std::int16_t>(const Frame&, std::int16_t*);
template void FrameReader::read<std::uint16_t>(const Frame&, std::uint16_t*);
template void FrameReader::read<std::int32_t>(const Frame&, std::int32_t*);

}  // namespace sagitta::dicom::detail

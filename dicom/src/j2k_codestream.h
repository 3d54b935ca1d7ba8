#pragma once
// What the two halves of the JPEG 2000 decoder share: the DICOM header's description of the
// decoded image, error conditions and the log, and decoding one codestream with OpenJPEG
// (j2k_codestream.cpp). The DCMTK codec that maps fragments to frames is in j2k_codec.cpp.
#include <dcmtk/config/osconfig.h>  // must precede the other DCMTK headers
#include <dcmtk/dcmdata/dctypes.h>
#include <dcmtk/oflog/oflog.h>
#include <dcmtk/ofstd/ofcond.h>
#include <dcmtk/ofstd/ofstring.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace sagitta::dicom::detail::j2k {

// DCMTK reserves condition module numbers above 1023 for applications.
constexpr unsigned short kConditionModule = 1101;
constexpr unsigned short kCodeDecodeFailed = 1;   // OpenJPEG rejected the data
constexpr unsigned short kCodeUnsupported = 2;    // valid data this decoder does not handle
constexpr unsigned short kCodeMismatch = 3;       // codestream disagrees with the DICOM header
constexpr unsigned short kCodeFragments = 4;      // cannot tell which fragments form a frame

OFLogger& logger();

// Logs `text` as an error and returns it as a condition of this decoder.
OFCondition make_error(unsigned short code, const std::string& text);

// What the DICOM header says about the decoded image.
struct PixelInfo {
  Uint16 rows = 0;
  Uint16 columns = 0;
  Uint16 samples_per_pixel = 0;
  Uint16 bits_allocated = 0;
  Uint16 bits_stored = 0;
  Uint16 pixel_representation = 0;
  Uint32 frames = 1;
  OFString photometric;

  Uint32 bytes_per_sample() const { return bits_allocated / 8u; }
  std::uint64_t frame_bytes() const {
    return std::uint64_t(rows) * columns * samples_per_pixel * bytes_per_sample();
  }
};

// The JPEG 2000 transfer syntaxes require YBR_ICT / YBR_RCT when the encoder applied the
// component transform; OpenJPEG undoes that transform, so the decoded samples are RGB.
OFString decoded_color_model(const PixelInfo& info);

// "frame <n>" for the 0-based frame index, as messages name frames.
std::string frame_label(Uint32 frame);

inline constexpr std::array<Uint8, 4> kCodestreamStart{0xFF, 0x4F, 0xFF, 0x51};  // SOC followed by SIZ
inline constexpr std::array<Uint8, 12> kJp2Signature{0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50,
                                                     0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A};

bool starts_with(const Uint8* data, std::size_t size, const Uint8* magic, std::size_t length);

// Whether the bytes begin a JPEG 2000 codestream or a JP2 file.
bool is_codestream_or_jp2(const Uint8* data, std::size_t size);

// Decodes one complete JPEG 2000 codestream (or JP2 file) into `out`, which holds one frame of
// info.frame_bytes() bytes: samples interleaved (PlanarConfiguration 0), 16-bit samples in host
// byte order, 8-bit samples as a plain byte sequence.
OFCondition decode_codestream(const Uint8* data, std::size_t size, const PixelInfo& info, Uint32 frame, Uint8* out);

}  // namespace sagitta::dicom::detail::j2k

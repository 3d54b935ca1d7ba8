// Decoding one JPEG 2000 codestream with OpenJPEG into the layout of a DICOM frame; also the
// error conditions, log and colour model that the DCMTK codec (j2k_codec.cpp) shares.
//
// Design notes:
// - All state of one decode (OpenJPEG codec, stream, messages) lives in that call.
// - OpenJPEG runs in strict mode: a truncated codestream is an error rather than an image whose
//   missing part is silently filled with zeros (OpenJPEG's lenient default).
// - The header is validated against the DICOM attributes before any sample buffer is allocated,
//   so a corrupt SIZ marker cannot make us allocate gigabytes.
#include "j2k_codestream.h"

#include <openjpeg.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace sagitta::dicom::detail::j2k {

OFLogger& logger() {
  // Function-local so that the logger is created on first use, not during static initialisation.
  static OFLogger instance = OFLog::getLogger("sagitta.dicom.j2k");
  return instance;
}

OFCondition make_error(unsigned short code, const std::string& text) {
  OFLOG_ERROR(logger(), text);
  return OFCondition(kConditionModule, code, OF_error, text.c_str());
}

OFString decoded_color_model(const PixelInfo& info) {
  if (info.samples_per_pixel == 3 &&
      (info.photometric == "YBR_ICT" || info.photometric == "YBR_RCT"))
    return "RGB";
  return info.photometric;
}

std::string frame_label(Uint32 frame) { return "frame " + std::to_string(frame + 1); }

bool starts_with(const Uint8* data, std::size_t size, const Uint8* magic, std::size_t length) {
  return size >= length && std::memcmp(data, magic, length) == 0;
}

bool is_codestream_or_jp2(const Uint8* data, std::size_t size) {
  return starts_with(data, size, kCodestreamStart.data(), kCodestreamStart.size()) ||
         starts_with(data, size, kJp2Signature.data(), kJp2Signature.size());
}

namespace {

// ---------------------------------------------------------------------------------------------
// OpenJPEG plumbing.

struct MemorySource {
  const Uint8* data = nullptr;
  std::size_t size = 0;
  std::size_t position = 0;
};

OPJ_SIZE_T read_source(void* buffer, OPJ_SIZE_T bytes, void* user) {
  auto& source = *static_cast<MemorySource*>(user);
  if (source.position >= source.size) return OPJ_SIZE_T(-1);  // OpenJPEG's end-of-stream signal
  const std::size_t n = std::min<std::size_t>(bytes, source.size - source.position);
  std::memcpy(buffer, source.data + source.position, n);
  source.position += n;
  return n;
}

OPJ_OFF_T skip_source(OPJ_OFF_T bytes, void* user) {
  auto& source = *static_cast<MemorySource*>(user);
  // Clamp to the buffer and report how far we really moved; OpenJPEG treats -1 as failure.
  if (bytes > 0) {
    if (source.position >= source.size) return -1;
    const auto step = std::min<std::uint64_t>(std::uint64_t(bytes), source.size - source.position);
    source.position += std::size_t(step);
    return OPJ_OFF_T(step);
  }
  const auto back = std::min<std::uint64_t>(std::uint64_t(-bytes), source.position);
  source.position -= std::size_t(back);
  return -OPJ_OFF_T(back);
}

OPJ_BOOL seek_source(OPJ_OFF_T offset, void* user) {
  auto& source = *static_cast<MemorySource*>(user);
  if (offset < 0 || std::uint64_t(offset) > source.size) return OPJ_FALSE;
  source.position = std::size_t(offset);
  return OPJ_TRUE;
}

// OpenJPEG's default message handlers print to stdout/stderr; ours keep the first error for the
// returned condition and send everything else to the DCMTK log at debug level.
struct Messages {
  std::string first_error;
};

std::string trimmed(const char* message) {
  std::string text = message ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  return text;
}

void on_error(const char* message, void* user) {
  auto& messages = *static_cast<Messages*>(user);
  const std::string text = trimmed(message);
  OFLOG_DEBUG(logger(), "OpenJPEG error: " << text);
  if (messages.first_error.empty()) messages.first_error = text;
}

void on_warning(const char* message, void*) {
  OFLOG_DEBUG(logger(), "OpenJPEG warning: " << trimmed(message));
}

void on_info(const char* message, void*) {
  OFLOG_TRACE(logger(), "OpenJPEG: " << trimmed(message));
}

struct CodecDeleter {
  void operator()(opj_codec_t* codec) const { opj_destroy_codec(codec); }
};
struct StreamDeleter {
  void operator()(opj_stream_t* stream) const { opj_stream_destroy(stream); }
};
struct ImageDeleter {
  void operator()(opj_image_t* image) const { opj_image_destroy(image); }
};
struct InfoDeleter {
  void operator()(opj_codestream_info_v2_t* info) const { opj_destroy_cstr_info(&info); }
};
using CodecPtr = std::unique_ptr<opj_codec_t, CodecDeleter>;
using StreamPtr = std::unique_ptr<opj_stream_t, StreamDeleter>;
using ImagePtr = std::unique_ptr<opj_image_t, ImageDeleter>;
using InfoPtr = std::unique_ptr<opj_codestream_info_v2_t, InfoDeleter>;

// Maps one decoded sample to the value stored in the DICOM pixel data. When the codestream's
// signedness disagrees with PixelRepresentation (some encoders get this wrong), the low `bits`
// bits are the pattern the encoder was given; reinterpret them with the header's signedness.
// `bits` is the smaller of BitsStored and the codestream precision: encoders that write 12-bit
// data as 16-bit components (GDCM does) leave the sign in bit 11, where BitsStored puts it.
struct SampleMapping {
  bool reinterpret = false;
  bool to_signed = false;
  Uint32 bits = 16;

  Sint32 operator()(Sint32 value) const {
    if (!reinterpret) return value;
    const Uint32 pattern = Uint32(value) & ((1u << bits) - 1u);
    if (to_signed && (pattern & (1u << (bits - 1u)))) return Sint32(pattern) - Sint32(1u << bits);
    return Sint32(pattern);
  }
};


// The OpenJPEG objects and messages of one decode. Members are destroyed in reverse order:
// the stream before the source it reads, the codec before the messages it reports into.
struct Decode {
  std::string where;  // "JPEG 2000 decoder, frame <n>: "
  Messages messages;
  CodecPtr codec;
  MemorySource source;
  StreamPtr stream;
  ImagePtr image;

  // A decode failure, with OpenJPEG's first error message when it gave one.
  OFCondition failed(const std::string& what) const {
    std::string text = where + what;
    if (!messages.first_error.empty()) text += ": " + messages.first_error;
    return make_error(kCodeDecodeFailed, text);
  }
};

OPJ_CODEC_FORMAT format_of(const Uint8* data, std::size_t size) {
  if (starts_with(data, size, kCodestreamStart.data(), kCodestreamStart.size())) return OPJ_CODEC_J2K;
  if (starts_with(data, size, kJp2Signature.data(), kJp2Signature.size())) return OPJ_CODEC_JP2;
  return OPJ_CODEC_UNKNOWN;
}

// A strict decoder whose messages go to `d.messages`.
OFCondition open_codec(Decode& d, OPJ_CODEC_FORMAT format) {
  d.codec.reset(opj_create_decompress(format));
  if (!d.codec) return make_error(kCodeDecodeFailed, d.where + "cannot create OpenJPEG decoder");
  opj_set_error_handler(d.codec.get(), on_error, &d.messages);
  opj_set_warning_handler(d.codec.get(), on_warning, &d.messages);
  opj_set_info_handler(d.codec.get(), on_info, &d.messages);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(d.codec.get(), &parameters)) return d.failed("decoder setup failed");
  if (!opj_decoder_set_strict_mode(d.codec.get(), OPJ_TRUE)) return d.failed("strict mode refused");
  return EC_Normal;
}

// A stream over the codestream in memory.
OFCondition open_stream(Decode& d, const Uint8* data, std::size_t size) {
  d.source = MemorySource{data, size, 0};
  const std::size_t chunk = std::clamp<std::size_t>(size, 4096, OPJ_J2K_STREAM_CHUNK_SIZE);
  d.stream.reset(opj_stream_create(chunk, OPJ_TRUE));
  if (!d.stream) return d.failed("cannot create stream");
  opj_stream_set_user_data(d.stream.get(), &d.source, nullptr);
  opj_stream_set_user_data_length(d.stream.get(), size);
  opj_stream_set_read_function(d.stream.get(), read_source);
  opj_stream_set_skip_function(d.stream.get(), skip_source);
  opj_stream_set_seek_function(d.stream.get(), seek_source);
  return EC_Normal;
}

OFCondition read_image_header(Decode& d) {
  opj_image_t* raw_image = nullptr;
  const bool header_ok = opj_read_header(d.stream.get(), d.codec.get(), &raw_image);
  d.image.reset(raw_image);
  if (!header_ok || !d.image) return d.failed("cannot read header");
  return EC_Normal;
}

// Checks the header against the DICOM attributes before OpenJPEG allocates the sample planes.
OFCondition check_header(const opj_image_t& image, const PixelInfo& info, const std::string& where) {
  if (image.numcomps != info.samples_per_pixel)
    return make_error(kCodeMismatch, where + "codestream has " + std::to_string(image.numcomps) +
                                         " components, SamplesPerPixel is " +
                                         std::to_string(info.samples_per_pixel));
  for (OPJ_UINT32 c = 0; c < image.numcomps; ++c) {
    const opj_image_comp_t& comp = image.comps[c];
    if (comp.dx != 1 || comp.dy != 1)
      return make_error(kCodeUnsupported, where + "subsampled components are not supported");
    if (comp.w != info.columns || comp.h != info.rows)
      return make_error(kCodeMismatch, where + "codestream is " + std::to_string(comp.w) + "x" +
                                           std::to_string(comp.h) + ", DICOM header says " +
                                           std::to_string(info.columns) + "x" +
                                           std::to_string(info.rows));
    if (comp.prec < 1 || comp.prec > info.bits_allocated)
      return make_error(kCodeMismatch, where + "component precision " + std::to_string(comp.prec) +
                                           " does not fit BitsAllocated " +
                                           std::to_string(info.bits_allocated));
  }
  return EC_Normal;
}

// A header that says YBR_ICT/YBR_RCT over a codestream without the component transform: the
// colours are taken as they are, with a warning.
void warn_without_component_transform(const Decode& d, const PixelInfo& info) {
  if (info.samples_per_pixel != 3 || decoded_color_model(info) == info.photometric) return;
  InfoPtr layout(opj_get_cstr_info(d.codec.get()));
  if (layout && layout->m_default_tile_info.mct == 0)
    OFLOG_WARN(logger(), d.where << "PhotometricInterpretation is " << info.photometric
                                 << " but the codestream uses no component transform; the colours"
                                    " are taken as RGB as they are");
}

// The decoded components, interleaved into `out` with the header's signedness.
OFCondition copy_samples(const Decode& d, const PixelInfo& info, Uint8* out) {
  const opj_image_t& image = *d.image;
  const std::size_t pixels = std::size_t(info.rows) * info.columns;
  const std::size_t spp = info.samples_per_pixel;
  for (OPJ_UINT32 c = 0; c < image.numcomps; ++c) {
    const opj_image_comp_t& comp = image.comps[c];
    if (!comp.data || comp.w != info.columns || comp.h != info.rows)
      return d.failed("component " + std::to_string(c) + " was not decoded completely");

    SampleMapping mapping;
    mapping.bits = std::min<Uint32>(comp.prec, info.bits_stored);
    mapping.to_signed = info.pixel_representation == 1;
    mapping.reinterpret = (comp.sgnd != 0) != mapping.to_signed;
    if (mapping.reinterpret && c == 0)
      OFLOG_WARN(logger(), d.where << "codestream is " << (comp.sgnd ? "signed" : "unsigned")
                                   << " but PixelRepresentation is " << info.pixel_representation
                                   << "; taking the low " << mapping.bits << " bits of each sample as "
                                   << (mapping.to_signed ? "signed" : "unsigned"));

    const OPJ_INT32* src = comp.data;
    if (info.bits_allocated == 8) {
      Uint8* dst = out + c;
      for (std::size_t i = 0; i < pixels; ++i, dst += spp) *dst = Uint8(mapping(src[i]));
    } else {
      Uint8* dst = out + 2 * c;
      for (std::size_t i = 0; i < pixels; ++i, dst += 2 * spp) {
        const Uint16 value = Uint16(mapping(src[i]));  // two's complement for negative values
        std::memcpy(dst, &value, sizeof value);
      }
    }
  }
  return EC_Normal;
}

}  // namespace

OFCondition decode_codestream(const Uint8* data, std::size_t size, const PixelInfo& info, Uint32 frame, Uint8* out) {
  Decode d;
  d.where = "JPEG 2000 decoder, " + frame_label(frame) + ": ";
  const OPJ_CODEC_FORMAT format = format_of(data, size);
  if (format == OPJ_CODEC_UNKNOWN)
    return make_error(kCodeDecodeFailed, d.where + "data is neither a JPEG 2000 codestream nor JP2");

  OFCondition result = open_codec(d, format);
  if (result.good()) result = open_stream(d, data, size);
  if (result.good()) result = read_image_header(d);
  if (result.good()) result = check_header(*d.image, info, d.where);
  if (result.bad()) return result;
  warn_without_component_transform(d, info);
  if (!opj_decode(d.codec.get(), d.stream.get(), d.image.get())) return d.failed("decoding failed");
  if (!opj_end_decompress(d.codec.get(), d.stream.get())) return d.failed("end of codestream invalid");
  return copy_samples(d, info, out);
}

}  // namespace sagitta::dicom::detail::j2k

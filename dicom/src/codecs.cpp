// Registers every pixel-data decoder Sagitta uses with DCMTK's global codec list: DCMTK's own JPEG
// (baseline, extended, lossless), JPEG-LS and RLE decoders, plus Sagitta's OpenJPEG-backed JPEG
// 2000 decoder (Debian's DCMTK ships none) (the declarations and their contract:
// sagitta/dicom/codecs.h).
#include "sagitta/dicom/codecs.h"

#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcvr.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>

#include <mutex>

#include "j2k_codec.h"

namespace sagitta::dicom {

void register_codecs() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs parser warnings to stderr; Sagitta reports problems itself, one line each.
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    // Elements an explicit-VR writer did not know are stored as UN; read the ones DCMTK's
    // dictionary knows with their real VR (geometry in UN is then used like any other).
    dcmEnableUnknownVRConversion.set(OFTrue);
    DJDecoderRegistration::registerCodecs();     // JPEG baseline, extended, lossless
    DJLSDecoderRegistration::registerCodecs();   // JPEG-LS
    DcmRLEDecoderRegistration::registerCodecs(); // RLE
    detail::register_j2k_decoder();              // JPEG 2000 through OpenJPEG
  });
}

}  // namespace sagitta::dicom

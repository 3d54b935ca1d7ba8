#pragma once
// Registers every pixel-data decoder Sagitta uses with DCMTK's global codec list:
// DCMTK's own JPEG (baseline, extended, lossless), JPEG-LS and RLE decoders, plus
// Sagitta's OpenJPEG-backed JPEG 2000 decoder (Debian's DCMTK ships none).
// Idempotent and thread-safe; every entry point that decodes pixel data calls it.

namespace sagitta::dicom {

void register_codecs();

}  // namespace sagitta::dicom

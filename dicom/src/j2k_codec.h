#pragma once
// JPEG 2000 decoding for DCMTK, backed by OpenJPEG (Debian's DCMTK ships no JPEG 2000 codec).
// Once registered, every DCMTK path that decompresses pixel data (DcmDataset::chooseRepresentation,
// DcmPixelData::getUncompressedFrame, DicomImage) handles the transfer syntaxes
// 1.2.840.10008.1.2.4.90 (lossless only) and 1.2.840.10008.1.2.4.91. Decoding only.

namespace sagitta::dicom::detail {

// Adds the decoder to DCMTK's global codec list. Idempotent and thread-safe; call after main()
// has started (DCMTK forbids registration from static initialisers).
void register_j2k_decoder();

// Removes the decoder again (waits for decodes in flight). Idempotent and thread-safe.
void unregister_j2k_decoder();

}  // namespace sagitta::dicom::detail

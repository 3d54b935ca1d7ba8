#pragma once
// Decoding one file's frames into float slices: any transfer syntax DCMTK (with Sagitta's
// registered codecs) can decode, stored bits and sign, MONOCHROME1, rescale, mosaic tiles.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "frame_attributes.h"
#include "sagitta/dicom/scan.h"

namespace sagitta::dicom::detail {

class FrameReader {
public:
  // Opens `path` and reads its header; pixel data stays in the file until a frame is read.
  explicit FrameReader(const std::string& path);
  ~FrameReader();
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;

  const PixelFormat& format() const { return format_; }

  // Decodes `frame` (which must come from this file) into `out`, frame.rows * frame.columns
  // values in rescaled units, row by row. Throws DicomError on undecodable data. Integer
  // outputs require an integral rescale (see exact_integer_type). Instantiated for float,
  // int16_t, uint16_t and int32_t.
  template <typename TOut>
  void read(const Frame& frame, TOut* out);

private:
  const std::uint8_t* decode(const Frame& frame);
  struct Impl;
  std::unique_ptr<Impl> impl_;
  PixelFormat format_;
};

}  // namespace sagitta::dicom::detail

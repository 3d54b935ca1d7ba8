#pragma once
// Writing and reading volumes through ITK (NRRD, NIfTI). Writes are atomic: a temporary file in
// the destination folder, renamed into place only when complete.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/dicom/load.h"

namespace sagitta::dicom {

enum class OutputPixelType {
  Float,   // 32-bit float, always lossless
  Auto,    // the narrowest of int16/uint16/int32 that holds every value exactly, else float
  Stored,  // the DICOM stored type; refused when rescaling makes values non-integer
};

struct WriteOptions {
  OutputPixelType pixel_type = OutputPixelType::Auto;
  bool compress = false;  // .nii.gz is always compressed
  // Convert a single float volume to the integer output type inside its own buffer instead of a
  // copy (halves peak memory for large series). The input's pixels are garbage afterwards.
  bool consume_input = false;
};

// Writes one volume, or several time points as a 4D image (4th axis = volume index).
void write_volumes(const std::vector<Image::Pointer>& volumes, const std::filesystem::path& out,
                   const WriteOptions& options, const LoadedSeries* source = nullptr);

// Reads a 3D volume as float (any ITK-readable format); throws DicomError when unreadable.
Image::Pointer read_volume(const std::filesystem::path& path);

}  // namespace sagitta::dicom

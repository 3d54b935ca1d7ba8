#pragma once
// Writing and reading volumes through ITK (NRRD, NIfTI). Writes are atomic: a temporary file in
// the destination folder, renamed into place only when complete.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/core/image.h"

namespace sagitta {

enum class OutputPixelType {
  Float,  // 32-bit float, always lossless
  Auto,   // the narrowest of int16/uint16/int32 that holds every value exactly, else float
};

struct WriteOptions {
  OutputPixelType pixel_type = OutputPixelType::Auto;
  bool compress = false;  // .nii.gz is always compressed
  // Convert a single float volume to the integer output type inside its own buffer instead of a
  // copy (halves peak memory for large series). The input's pixels are garbage afterwards.
  bool consume_input = false;
};

// Writes float volumes: one as a 3D image, several time points as a 4D image (4th axis = volume
// index), narrowed to an integer type when `options` allow and the values permit.
void write_volumes(const std::vector<Image::Pointer>& volumes, const std::filesystem::path& out,
                   const WriteOptions& options);

// Writes volumes in their own pixel type (instantiated for int16_t, uint16_t, int32_t, float).
template <typename TPixel>
void write_volumes_as(const std::vector<typename itk::Image<TPixel, 3>::Pointer>& volumes,
                      const std::filesystem::path& out, bool compress = false);

// Reads a 3D volume as float (any ITK-readable format); throws Error when unreadable.
Image::Pointer read_volume(const std::filesystem::path& path);

}  // namespace sagitta

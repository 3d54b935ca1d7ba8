#pragma once
// Reading outputs back in tests: a multi-volume output as a 4D float image (4th axis = volume
// index), whatever its file layout (NIfTI/MHA 4D images, or NRRD sequences, list axis first, which
// ITK reads as vector images); label maps as they were written.
#include <filesystem>

#include <itkImage.h>

#include "sagitta/core/image.h"

namespace sagitta::testing {

itk::Image<float, 4>::Pointer read_4d(const std::filesystem::path& path);

// A label map file as uint16 (throws ITK's exception when unreadable).
LabelImage::Pointer read_label_map(const std::filesystem::path& path);

// Voxels that differ between two label maps; SIZE_MAX when their sizes differ.
std::size_t label_differences(const LabelImage& a, const LabelImage& b);

}  // namespace sagitta::testing

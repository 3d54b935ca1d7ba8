#pragma once
// Reads a multi-volume output as a 4D float image (4th axis = volume index), whatever its file
// layout: NIfTI/MHA 4D images, or NRRD sequences (list axis first), which ITK reads as vector images.
#include <filesystem>

#include <itkImage.h>

namespace sagitta::testing {

itk::Image<float, 4>::Pointer read_4d(const std::filesystem::path& path);

}  // namespace sagitta::testing

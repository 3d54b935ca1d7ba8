#pragma once
// Multi-volume NRRD in the layout 3D Slicer loads as a volume sequence: the first (fastest) axis
// is a "list" axis over time points, followed by three "domain" axes in LPS space. ITK's NRRD
// writer cannot express this (it writes an unnamed 4D space), so teem's NrrdIO, which ITK ships,
// writes it directly.
#include <filesystem>
#include <vector>

#include <itkImage.h>

namespace sagitta::detail {

template <typename TPixel>
void write_nrrd_sequence(const std::vector<typename itk::Image<TPixel, 3>::Pointer>& volumes,
                         const std::filesystem::path& path, bool compress);

}  // namespace sagitta::detail

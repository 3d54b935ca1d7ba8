#pragma once
// The image types segmentation works with. Every image carries its geometry (origin, spacing,
// direction; LPS as in ITK and DICOM).
#include <itkImage.h>

#include <cstdint>

#include "sagitta/core/image.h"

namespace sagitta::segmentation {

using sagitta::Image;       // itk::Image<float, 3>: intensities, logits, probabilities
using sagitta::LabelImage;  // itk::Image<std::uint16_t, 3>: label values as in the model card

}  // namespace sagitta::segmentation

#pragma once
// Training data on the model's grid: reading pairs (volume files or DICOM folders), resampling
// onto an axis-aligned grid, remapping label values. ITK only, no LibTorch (cheap to compile).
#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/images.h"
#include "sagitta/segmentation/train.h"

namespace sagitta::segmentation::detail {

// A volume file, or the one stack of a DICOM folder (`series` selects when there are several).
Image::Pointer read_image(const std::filesystem::path& path, const std::string& series);

// The image resampled onto an axis-aligned grid (identity direction, LPS) at `spacing` (x y z),
// covering the image's extent. Why axis-aligned: the same anatomy must land at the same array
// position whatever the file's orientation (NIfTI files are often stored mirrored relative to
// DICOM), or a network would have to learn every mirror image of the body.
Image::Pointer resample_canonical(const Image& image, const std::array<double, 3>& spacing, bool nearest,
                                  float outside);
// `image` resampled onto `reference`'s grid.
Image::Pointer resample_like(const Image& image, const itk::ImageBase<3>& reference, bool nearest, float outside);

// Label values mapped through `specs` (values not listed become 0); identity when specs is empty.
// Throws SegmentationError for values outside 0..255 after mapping.
std::vector<std::uint8_t> remap_labels(const Image& labels, const std::vector<LabelSpec>& specs);

// A training/validation case on the model grid: x fastest, then y, then z.
struct CaseData {
  std::array<int, 3> size{};           // x y z
  std::vector<float> image;            // raw intensities (normalised later)
  std::vector<std::uint8_t> labels;
  Image::Pointer grid;                 // the canonical grid (geometry only matters)
  std::string name;
  std::array<double, 3> source_spacing{}, source_extent{};  // the image as given, mm (x y z)
};

// The labels to score a model's output against a label map: given, else the mapping in the
// card's provenance (`sagitta train --labels`), else the card's labels kept as they are.
std::vector<LabelSpec> labels_to_score(const ModelCard& card, const std::vector<LabelSpec>& given);
// A reference label map, its reading errors as SegmentationError.
Image::Pointer read_reference(const std::filesystem::path& path);

CaseData load_case(const TrainingPair& pair, const std::array<double, 3>& spacing,
                   const std::vector<LabelSpec>& specs);

}  // namespace sagitta::segmentation::detail

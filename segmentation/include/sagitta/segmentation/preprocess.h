#pragma once
// From source volumes to the model's grid and intensities, and back: resampling to the card's
// spacing (ITK, linear), optional crop to the body, per-channel normalisation; model-grid labels
// and probabilities are mapped back onto the exact source grid (nearest neighbour for labels,
// linear for probabilities).
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "sagitta/segmentation/images.h"
#include "sagitta/core/model_card.h"

namespace sagitta::segmentation {
namespace nnunet {
struct Plan;
struct Properties;
}  // namespace nnunet

struct PreprocessOptions {
  // Crop to the bounding box of the body (CT: voxels above body_threshold_hu; other modalities:
  // voxels above the channel's minimum) plus a margin, to skip windows of air.
  bool crop_to_body = false;
  double body_threshold_hu = -500;
  double crop_margin_mm = 10;
};

struct Preprocessed {
  std::vector<Image::Pointer> channels;  // normalised, on the model grid (all share one geometry)
  bool resampled = false;
  bool cropped = false;
  std::vector<std::string> decisions;    // what was done and why, for the report
  double seconds = 0;                    // time preprocess() took
  // nnU-Net results folders (card format "nnunet" read from one): the channels are nnU-Net's
  // preprocessed arrays (nnunet::as_image), and these hold the plan and what the way back needs.
  // Null for every other model.
  std::shared_ptr<const nnunet::Plan> nnunet_plan;
  std::shared_ptr<const nnunet::Properties> nnunet_properties;
};

// Checks the inputs against the card (channel count, non-empty, same grid, finite values) and
// prepares them. Throws SegmentationError naming the problem.
Preprocessed preprocess(const std::vector<Image::Pointer>& inputs, const ModelCard& card,
                        const PreprocessOptions& options = {});

// The grid a volume is resampled to for `card`, as an image without pixels: the array the network
// sees, in the card's orientation (an axis-aligned grid of it, or the source's axes permuted and
// flipped to the closest match), its axes in the tensor's memory order, at the card's spacing,
// covering every source voxel centre.
Image::Pointer model_grid(const itk::ImageBase<3>& source, const ModelCard& card);

// A grid whose axes are the columns of `direction` (orthonormal), at `spacing` (mm, per grid axis),
// centred on the bounding box of the source's voxel centres in that frame, as an image without
// pixels. axis_aligned_grid is the LPS one (identity direction), shared by inference for LPS cards
// and by training, so both present patient space to the network the same way.
// `anchor` FirstVoxel places the grid as MONAI's Spacing does (compute_shape_offset): its first
// voxel on the source's first voxel centre in that frame, round(extent / spacing) + 1 voxels.
enum class GridAnchor { Centre, FirstVoxel };
Image::Pointer oriented_grid(const itk::ImageBase<3>& source, const std::array<double, 3>& spacing,
                             const itk::ImageBase<3>::DirectionType& direction, GridAnchor anchor = GridAnchor::Centre);
Image::Pointer axis_aligned_grid(const itk::ImageBase<3>& source, const std::array<double, 3>& spacing);

// Model-grid results onto the source grid: the output's origin, spacing, direction and size are
// exactly the source's. Voxels outside the model grid (body crop) get `outside`.
LabelImage::Pointer labels_to_source(const LabelImage& labels, const itk::ImageBase<3>& source);
Image::Pointer probability_to_source(const Image& probability, const itk::ImageBase<3>& source, float outside);

bool same_grid(const itk::ImageBase<3>& a, const itk::ImageBase<3>& b);

}  // namespace sagitta::segmentation

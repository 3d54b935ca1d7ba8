#pragma once
// The model card: the JSON file beside a model's weights (`model.json` next to `model.pt`) that
// says what the model expects and produces. See the model contract in docs/ and DESIGN.md.
// No LibTorch here: the card is read by tools that never run a model (--xml, info, SEG writing).
#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/core/review_profile.h"

namespace sagitta {

// How an input channel's intensities are normalised before the network sees them. The schemes
// cover the pipelines models come from: nnU-Net (CT, ZScore with or without its foreground mask,
// MinMax), MONAI (NormalizeIntensity, ScaleIntensityRange, ScaleIntensityRangePercentiles) and
// Sagitta's own cards.
struct Normalization {
  enum class Scheme {
    CT,          // clip to [clip_low, clip_high], then (x - mean) / std with the card's fixed mean/std
    ZScore,      // per-volume (x - mean) / std over the voxels `mask` selects
    Fixed,       // (x - mean) / std with the card's fixed mean and std
    None,
    Percentile,  // clip to the volume's [lower, upper] percentiles, then z-score (`zscore`) or
                 // scale that range to [b_min, b_max] (MONAI's ScaleIntensityRangePercentiles)
    MinMax,      // (x - min) / (max - min) of the volume, to [0, 1]
    Range,       // [a_min, a_max] -> [b_min, b_max] linearly, clipped to [b_min, b_max] when `clip`
  };
  // Which voxels the per-volume statistics (ZScore, Percentile, MinMax) are taken over:
  //   Auto     the non-zero voxels unless every voxel is zero or non-zero (Sagitta's z-score; a
  //            card without "mask" means Auto for zscore and All for the others)
  //   All      every voxel
  //   NonZero  the non-zero voxels only, and zero voxels stay zero (MONAI's nonzero=True; nnU-Net's
  //            use_mask_for_norm, whose mask is the non-zero region)
  enum class Mask { Auto, All, NonZero };
  Scheme scheme = Scheme::ZScore;
  Mask mask = Mask::Auto;
  double clip_low = -1024, clip_high = 3071;  // CT
  double mean = 0, std = 1;                   // CT and Fixed
  double lower = 0.5, upper = 99.5;           // Percentile: percentiles in [0, 100]
  bool zscore = false;                        // Percentile: z-score after clipping instead of scaling
  double a_min = 0, a_max = 1;                // Range
  double b_min = 0, b_max = 1;                // Range and Percentile's scaling target
  bool clip = true;                           // Range and Percentile: clip the result to [b_min, b_max]
};

struct InputChannel {
  std::string name;  // e.g. "CT", "T1"
  Normalization normalization;
};

// A coded concept (DICOM SEG segment category/type): code value, scheme designator, meaning.
struct Code {
  std::string value, scheme, meaning;
};

struct Label {
  int value = 0;  // voxel value in the label map; 0 is background
  std::string name;
  std::array<int, 3> color{128, 128, 128};  // RGB 0..255, display colour
  std::optional<Code> category, type;        // for DICOM SEG (SNOMED CT, DCM...)
  bool color_given = false;                  // read from a file that named the colour (else a display may pick one)
};

// Region-based models (nnU-Net's regions, BraTS-style): the network has one sigmoid output per
// region; a voxel whose region probability exceeds 0.5 takes the region's label value, regions
// painted in card order so later ones win (nnU-Net's regions_class_order).
struct Region {
  std::vector<int> labels;  // the label values the region covers (for the record and for training)
  int value = 0;            // the label written where this region is on
};

// One more set of weights for the card's network (a cross-validation fold); its outputs are averaged
// with the main weights'.
struct Fold {
  std::filesystem::path weights;
  std::string sha256;
};

struct ModelCard {
  std::string name, version, description;
  std::string format = "torchscript";  // "torchscript" or "native-unet"
  std::filesystem::path weights;       // absolute after loading (stored relative to the card)
  std::string sha256;                  // of the weights file
  int dimensions = 3;                  // 2 or 3
  std::vector<InputChannel> channels;
  std::vector<double> spacing;         // target spacing in mm, x y (z), one per dimension
  std::vector<int> patch_size;         // x y (z)
  // Whole-slide (pathology) models: the resolution the network was trained at, in micrometres per
  // pixel; tiles are read at this resolution whatever the slide's. Optional (absent for CT/MR).
  std::optional<double> microns_per_pixel;
  std::vector<Label> labels;           // including background (value 0)

  // The array convention the network was trained in. `orientation` names where the array's axes
  // x y z (i j k, x fastest) point: a 3-letter code such as LPS (ITK's and DICOM's, the default) or
  // RAS (nibabel's canonical arrays, MONAI's Orientation("RAS")), or "stored" (the file's own axes,
  // as SimpleITK reads them). `reorient` says how that array is made from the source:
  //   "grid"     resample the volume into an axis-aligned grid of that orientation (Sagitta's models)
  //   "closest"  permute and flip the stored axes to the closest match and keep any obliquity, as
  //              nibabel's as_closest_canonical and MONAI's Orientation do (no interpolation)
  // `tensor_axes` orders the tensor's spatial dimensions (D H W) by array axis: "zyx" (the default,
  // x the fastest tensor dimension, as SimpleITK and nnU-Net) or e.g. "xyz" (nibabel and MONAI,
  // whose tensors are C x i x j x k). `spacing`, `patch_size` and `mirror_axes` are given in array
  // axes (x y z) whatever `tensor_axes` is. Outputs always come back in the source geometry.
  std::string orientation = "LPS";
  std::string reorient = "grid";
  std::string tensor_axes = "zyx";
  // The array axes test-time mirroring may flip ("" when the model allows none).
  std::string mirror_axes = "xyz";
  // "softmax" (one output per label value) or "sigmoid" (one output per region; `regions`).
  std::string activation = "softmax";
  std::vector<Region> regions;
  // More weights for the same network, averaged with `weights`: "logits" (nnU-Net averages the
  // folds' logits) or "probabilities" (the mean of the folds' softmax).
  std::vector<Fold> folds;
  std::string fold_average = "probabilities";
  // How the model's sliding windows are blended: "gaussian" (importance weights, sigma =
  // sigma_scale x patch; nnU-Net, MONAI's mode "gaussian") or "constant" (plain averaging, MONAI's
  // default), and the overlap it was meant to run with (unset: the caller's default).
  std::string window_weights = "gaussian";
  double sigma_scale = 0.125;
  std::optional<double> overlap;
  // Crop the normalised model array to the bounding box of the first channel's positive voxels plus
  // this many voxels on each side before the windows run (MONAI's CropForeground; voxels outside
  // are background). Unset: no crop.
  std::optional<int> crop_foreground_margin;
  std::string gradcam_layer;           // name of the layer whose activation is returned
  bool returns_activation = false;     // forward returns (logits, activation)
  nlohmann::json unet;                 // native U-Net architecture (format "native-unet")
  nlohmann::json provenance;           // how it was made: data, command, metrics
  // What the model was trained on and when its results need a human's review (review_profile.h).
  std::optional<TrainingProfile> training_profile;
  ReviewThresholds review_thresholds;
  std::filesystem::path path;          // where the card was read from

  int num_classes() const;             // highest label value + 1
  int output_channels() const;         // the network's outputs: num_classes(), or one per region
  // For each axis of the array the network sees in memory order (tensor W, H, D), the card's
  // array axis (0 x, 1 y, 2 z) it is: {0, 1, 2} for tensor_axes "zyx".
  std::array<int, 3> tensor_order() const;
  const Label* find_label(const std::string& name) const;
};

// Reads and validates a card (schema, sizes, labels) and checks the weights' sha256.
// Throws sagitta::Error naming the card and the problem.
ModelCard load_card(const std::filesystem::path& card_path, bool verify_hash = true);

// Writes a card atomically; `weights` is stored relative to the card's folder. Fills sha256 from
// the weights file when empty.
void save_card(ModelCard card, const std::filesystem::path& card_path);

nlohmann::json to_json(const ModelCard& card);

// A card's "labels" array, checked (integer values 0..65535, [r, g, b] colours, codes). Names
// are required for full cards; label-only files (colour tables) may leave them out.
std::vector<Label> labels_from_json(const nlohmann::json& labels, bool require_names);
// Only the labels of a card file: enough to name and colour a label map, no weights needed.
std::vector<Label> read_card_labels(const std::filesystem::path& card_path);
ModelCard card_from_json(const nlohmann::json& j, const std::filesystem::path& card_path);

// The LPS unit vectors of the three axes of an orientation code ("RAS": x -> (-1,0,0), y -> (0,-1,0),
// z -> (0,0,1)). Throws sagitta::Error when the code is not three letters naming L/R, P/A and S/I
// once each.
std::array<std::array<double, 3>, 3> orientation_vectors(const std::string& code);

// sha256 of a file, lowercase hex.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace sagitta

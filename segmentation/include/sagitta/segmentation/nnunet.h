#pragma once
// nnU-Net v2, torch-free: a results folder read into a Plan, and nnU-Net's own data path around the
// network, step for step as its predictor does it (nnunetv2 predict_from_raw_data): the reader's
// array convention, transpose_forward, crop to the non-zero region, per-channel normalisation,
// resampling to the configuration's spacing (skimage/scipy semantics), and the way back (logits
// resampled to the cropped original shape, softmax or sigmoid regions, labels, uncrop,
// transpose_backward, the source geometry). The sliding window itself is the one engine's
// (sliding_window.h with StepRule::NnUNet, ImportanceMap::NnUNet, PadRule::Zero).
//
// Arrays here are numpy's: C order, shape[0] slowest. An ITK image's buffer read in C order is
// SimpleITK's GetArrayFromImage array (z y x of the stored voxel axes).
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/core/review_profile.h"
#include "sagitta/segmentation/images.h"

namespace sagitta::segmentation::nnunet {

// ---- the plan ------------------------------------------------------------------------------------

// The image reader/writer the dataset was trained with (plans' image_reader_writer, else
// dataset.json's overwrite_image_reader_writer, else SimpleITKIO).
enum class Reader { SimpleITK, Nibabel, NibabelWithReorient };

struct Normalisation {
  std::string scheme;           // CTNormalization, ZScoreNormalization, RescaleTo01Normalization,
                                // RGBTo01Normalization, NoNormalization
  bool use_mask_for_norm = false;
  // foreground_intensity_properties_per_channel (CTNormalization needs them)
  double mean = 0, std = 1, percentile_00_5 = 0, percentile_99_5 = 0;
};

// resample_data_or_seg_to_shape's keyword arguments.
struct Resampling {
  int order = 3;
  int order_z = 0;
  std::optional<bool> force_separate_z;  // nullopt: decided by the anisotropy rule
  double anisotropy_threshold = 3;       // nnunetv2.configuration.ANISO_THRESHOLD
};

struct Label {
  std::string name;
  std::vector<int> values;  // one value, or a region's values
};

struct Plan {
  std::filesystem::path folder;  // the configuration folder
  std::string dataset_name, trainer, plans_name, configuration;
  bool two_d = false;
  std::vector<double> spacing;         // the configuration's, after transpose (2 or 3 entries)
  std::vector<int> patch_size;         // 2 or 3 entries, network axis order
  std::array<int, 3> transpose_forward{0, 1, 2}, transpose_backward{0, 1, 2};
  std::vector<Normalisation> normalisation;  // one per input channel
  Resampling resample_data, resample_probabilities;
  nlohmann::json architecture;         // plans' "architecture": network_class_name, arch_kwargs, ...
  std::string network_class_name;
  std::vector<std::string> channel_names;  // dataset.json channel_names in key order "0", "1", ...
  // What the dataset was: plans' foreground intensities per channel and, when the folder keeps
  // dataset_fingerprint.json, the cases' spacing and cropped field of view (in x y z of the stored
  // axes), for the review checks.
  TrainingProfile profile;
  std::vector<Label> labels;               // dataset.json order, "ignore" excluded
  std::optional<int> ignore_label;
  bool has_regions = false;
  std::vector<int> regions_class_order;    // region heads' label values (has_regions)
  std::string file_ending;
  Reader reader = Reader::SimpleITK;
  std::string reader_name;
  // fold name ("0".."4", "all") -> checkpoint files present (checkpoint_final.pth, checkpoint_best.pth)
  std::map<std::string, std::vector<std::filesystem::path>> folds;

  int input_channels() const { return int(channel_names.size()); }
  // The network's output heads: all labels (softmax) or the foreground regions (sigmoid).
  int heads() const;
  // Sorted label values (LabelManager.all_labels); head i of a softmax network is all_labels()[i].
  std::vector<int> all_labels() const;
  // The checkpoint of a fold ("final" or "best"); throws naming what is missing.
  std::filesystem::path checkpoint(const std::string& fold, const std::string& which = "final") const;
};

// Reads DatasetNNN_Name/<trainer>__<plans>__<configuration>: plans.json, dataset.json and the
// fold_*/checkpoint_*.pth present. Throws SegmentationError (one line naming what is missing or
// unsupported): no plans/dataset, no checkpoint, unknown or cascade/lowres configuration, an
// unsupported reader, normalisation or resampling function.
Plan read_results_folder(const std::filesystem::path& folder);

// ---- arrays --------------------------------------------------------------------------------------

using Shape = std::array<int64_t, 3>;

struct Array {
  Shape shape{};
  std::vector<float> values;  // C order

  Array() = default;
  explicit Array(Shape s, float fill = 0);
  int64_t size() const { return shape[0] * shape[1] * shape[2]; }
  float& at(int64_t i, int64_t j, int64_t k) { return values[std::size_t((i * shape[1] + j) * shape[2] + k)]; }
  float at(int64_t i, int64_t j, int64_t k) const { return values[std::size_t((i * shape[1] + j) * shape[2] + k)]; }
};

// Which ITK index axis (0 = x of the buffer) each array axis walks, and whether reversed.
struct AxisMap {
  std::array<int, 3> source_axis{2, 1, 0};
  std::array<bool, 3> flipped{false, false, false};
};

// The reader's array of an image: SimpleITKIO and NibabelIO give the stored axes as z y x (the
// buffer as is), NibabelIOWithReorient first reorients to the closest canonical RAS (nibabel's
// io_orientation: permutation and flips only). `spacing` gets the reader's spacing, array order.
AxisMap reader_axes(Reader reader, const Image& image);
Array to_array(const Image& image, const AxisMap& axes, std::array<double, 3>* spacing = nullptr);

// An array as an ITK image for the window engine (x = shape[2], y = shape[1], z = shape[0], the
// buffer as is, unit spacing, identity direction); to_array(image, AxisMap{}) is the way back.
Image::Pointer as_image(const Array& a);

// numpy's a.transpose(order): axis j of the result is axis order[j] of `a`.
Array transpose(const Array& a, const std::array<int, 3>& order);

// create_nonzero_mask + binary_fill_holes + get_bbox_from_mask: [begin, end) per axis; the whole
// array when nothing is non-zero. `mask` (optional) gets the filled mask over the whole array.
using Box = std::array<std::array<int64_t, 2>, 3>;
Box nonzero_box(const std::vector<Array>& channels, std::vector<std::uint8_t>* mask = nullptr);
Array crop(const Array& a, const Box& box);

// One channel normalised in place as the scheme's run() does (float32 arithmetic); `inside` is the
// cropped non-zero mask (ZScore with use_mask_for_norm), may be null otherwise.
void normalise(Array& a, const Normalisation& n, const std::uint8_t* inside);

// compute_new_shape: int(round(old_spacing / new_spacing * old_shape)), round half to even.
Shape compute_new_shape(const Shape& old_shape, const std::array<double, 3>& old_spacing,
                        const std::array<double, 3>& new_spacing);

// The separate-z decision of resample_data_or_seg_to_shape: -1 for none, else the low-res axis.
int separate_z_axis(const Resampling& r, const std::array<double, 3>& current_spacing,
                    const std::array<double, 3>& new_spacing);

// resample_data_or_seg_to_shape (is_seg False) over channels: skimage.transform.resize(order,
// mode 'edge', anti_aliasing False, clip) in float64, in-plane per slice plus nearest/linear along
// the low-res axis when separated. Returns float32 as nnU-Net does; unchanged when the shape is.
// `half`: the float64 results rounded straight to float16 (the predictor's logits are half, and
// resample_data_or_seg keeps the input's dtype).
std::vector<Array> resample_to_shape(const std::vector<Array>& data, const Shape& new_shape,
                                     const std::array<double, 3>& current_spacing,
                                     const std::array<double, 3>& new_spacing, const Resampling& r,
                                     bool half = false);

// ---- the whole way in and back -------------------------------------------------------------------

// What the way back needs (nnU-Net's "properties").
struct Properties {
  AxisMap axes;
  std::array<double, 3> reader_spacing{};     // array order, before transpose
  Shape shape_before_cropping{};              // after transpose
  Box bbox{};
  Shape shape_after_cropping{};
  std::array<double, 3> original_spacing{};   // transposed
  std::array<double, 3> target_spacing{};     // 2d: the original's first entry + the plan's two
  Shape new_shape{};
  // the source image's geometry
  Image::PointType origin;
  Image::SpacingType spacing;
  Image::DirectionType direction;
  Image::SizeType size;
  Image::IndexType index;
};

struct Preprocessed {
  std::vector<Array> channels;  // the network's input, shape = properties.new_shape
  Properties properties;
};

// DefaultPreprocessor.run_case_npy from ITK images (one per channel, same voxel grid).
Preprocessed preprocess(const Plan& plan, const std::vector<Image::Pointer>& channels);

struct Exported {
  LabelImage::Pointer labels;                  // the source image's geometry
  std::vector<Image::Pointer> probabilities;   // per head, source geometry, 0 outside the crop
  std::vector<Array> cropped_probabilities;    // per head on the cropped transposed grid
};

// convert_predicted_logits_to_segmentation_with_correct_shape: `logits` (per head, on the
// preprocessed grid: properties.new_shape; float16 values, as the predictor's) resampled to the
// cropped shape in float16, softmax or sigmoid,
// argmax or regions > 0.5 in regions_class_order, uncropped into background, transpose_backward,
// the reader's axes undone. Probabilities are filled only when asked.
Exported export_prediction(const Plan& plan, const Properties& properties, const std::vector<Array>& logits,
                           bool probabilities = false);

// ---- sliding window (the engine uses these for StepRule::NnUNet / ImportanceMap::NnUNet) ----------

// compute_steps_for_sliding_window for one axis (size >= tile).
std::vector<int> sliding_window_steps(int size, int tile, double tile_step_size = 0.5);

// compute_gaussian(tile, sigma_scale, value_scaling_factor) as the predictor calls it: a delta at
// tile//2 through scipy's gaussian_filter (mode constant, truncate 4), divided by its maximum times
// `value_scaling`, rounded to float16 when `half` (the predictor's dtype) and zeros replaced by the
// smallest non-zero value. C order over the tile's axes.
std::vector<float> gaussian_importance(const std::vector<int>& tile, double sigma_scale = 1.0 / 8,
                                       double value_scaling = 10, bool half = true);

// A float (or double, rounded once) to the nearest float16 (round half to even, subnormals kept), as a float.
float round_to_half(float v);
float round_to_half(double v);

}  // namespace sagitta::segmentation::nnunet

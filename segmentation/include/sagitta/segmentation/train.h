#pragma once
// Training and evaluating Sagitta's native U-Net on image/label pairs. No LibTorch here: the CLI
// and the tests include this header without paying for torch.
#include <array>
#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sagitta::segmentation {

// One image and its label map. `image` is a volume file (NRRD, NIfTI, MHA) or a DICOM folder
// (then `series` selects the stack when the folder holds several); `label` is a volume file in
// any geometry that overlaps the image (it is resampled, nearest neighbour, onto the image).
struct TrainingPair {
  std::filesystem::path image, label;
  std::string series;
};

// A target class of the model and the label-map values merged into it.
struct LabelSpec {
  int value = 0;                  // 1, 2, ... in the model's output
  std::string name;
  std::vector<int> sources;       // values in the training label maps
  std::array<int, 3> color{128, 128, 128};
};

// "liver=5,spleen=1,kidneys=2+3" -> values 1, 2, 3 in that order. Throws SegmentationError.
std::vector<LabelSpec> parse_label_specs(const std::string& text);

struct TrainOptions {
  std::vector<TrainingPair> training;
  std::vector<TrainingPair> validation;  // empty: validation Dice is measured on the training pairs
  std::vector<LabelSpec> labels;         // empty: label values kept as they are (0..max)
  std::filesystem::path output;          // folder: model.pt + model.json, checkpoint.pt, training.json
  std::string name = "sagitta-unet";
  std::string description;
  std::string command;                   // the command line, recorded in the card's provenance

  // Architecture (ignored when fine-tuning: the initial model's architecture is kept).
  int dimensions = 3;
  int base_channels = 16;
  int depth = 4;
  double dropout = 0.0;
  bool deep_supervision = true;

  std::vector<double> spacing;           // mm, x y (z); empty: the first training image's spacing
  std::vector<int> patch_size{96, 96, 32};  // voxels, x y (z); multiples of 2^(depth-1)
  std::string normalization = "ct";      // ct (clip + fixed z-score from the training foreground),
                                         // zscore (per volume), none

  std::string optimizer = "adam";        // adam | sgd (momentum 0.99, Nesterov)
  double learning_rate = 0;              // 0: 1e-3 for Adam, 1e-2 for SGD; decays as poly(0.9)
  double weight_decay = 3e-5;
  int epochs = 50;
  int iterations_per_epoch = 50;
  int batch_size = 2;
  double foreground_fraction = 0.33;     // share of patches centred on a foreground voxel

  // Augmentation
  bool augment = true;
  std::string flip_axes = "xyz";         // axes mirrored with probability 0.5 ("" for none)
  double rotation_degrees = 15;          // about each axis (2D: in-plane only)
  double scale_range = 0.15;             // isotropic scale in [1-r, 1+r]
  double intensity_range = 0.1;          // brightness/contrast jitter and noise, normalised units

  unsigned seed = 1;
  int threads = 0;                       // 0: all hardware threads (LibTorch starts with one)
  bool resume = false;                   // continue from output/checkpoint.pt
  std::filesystem::path init;            // fine-tune from a native-unet model card
  std::vector<TrainingPair> test;        // evaluated with the final model (see evaluate_model)
};

struct LabelDice {
  int value = 0;
  std::string name;
  std::optional<double> dice;            // empty when the label is absent from both maps
  long long reference_voxels = 0, predicted_voxels = 0;
};

struct EpochStats {
  int epoch = 0;                         // 1-based
  double loss = 0, learning_rate = 0, seconds = 0;
  std::vector<LabelDice> dice;           // validation Dice per label (mean over validation pairs)
  double mean_dice = 0;
};

struct TrainProgress {
  int epoch = 0, epochs = 0, iteration = 0, iterations = 0;
  double loss = 0;                       // running mean over the epoch
  const EpochStats* finished = nullptr;  // set once per epoch, after validation
};

struct TrainResult {
  std::filesystem::path card;            // output/model.json
  std::vector<EpochStats> history;       // every finished epoch, including resumed ones
  int first_epoch = 1;                   // > 1 after a resume
  bool stopped = false;                  // the stop flag ended training early (resume later)
  double seconds = 0;
  std::vector<std::vector<LabelDice>> test;  // per test pair
};

// Trains (or resumes, or fine-tunes) and writes after every epoch: model.pt + model.json (card,
// format "native-unet"), checkpoint.pt (weights + optimiser state) and training.json (history).
// `stop`, when set, ends training after the current iteration; the last finished epoch stays
// saved. Throws SegmentationError for bad options or data.
TrainResult train_unet(const TrainOptions& options,
                       const std::function<void(const TrainProgress&)>& progress = {},
                       const std::atomic<bool>* stop = nullptr);

// Dice per label of a native-unet model (its card) on a pair, measured in the label map's own
// geometry: the image is resampled to the model's grid, segmented, and the prediction mapped back
// (nearest neighbour). `labels` says how the pair's label values map to the model's; empty: the
// mapping recorded in the card's provenance, else identity.
std::vector<LabelDice> evaluate_model(const std::filesystem::path& card, const TrainingPair& pair,
                                      const std::vector<LabelSpec>& labels = {}, int threads = 0);

// evaluate_model on each pair, results recorded in the card's provenance ("test").
std::vector<std::vector<LabelDice>> evaluate_into_card(const std::filesystem::path& card,
                                                       const std::vector<TrainingPair>& tests,
                                                       const std::vector<LabelSpec>& labels = {}, int threads = 0);

// A path as a card's provenance records it: relative to the card's folder (`card_folder`), never
// a machine's absolute path.
std::string provenance_path(const std::filesystem::path& path, const std::filesystem::path& card_folder);

}  // namespace sagitta::segmentation

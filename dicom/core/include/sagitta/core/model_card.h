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

namespace sagitta {

// How an input channel's intensities are normalised before the network sees them.
struct Normalization {
  enum class Scheme {
    CT,       // clip to [clip_low, clip_high], then (x - mean) / std with the card's fixed mean/std
    ZScore,   // per-volume (x - mean) / std over the (non-zero) volume, as nnU-Net does for MR
    Fixed,    // (x - mean) / std with the card's fixed mean and std
    None,
  };
  Scheme scheme = Scheme::ZScore;
  double clip_low = -1024, clip_high = 3071;  // CT only
  double mean = 0, std = 1;                   // CT and Fixed
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
  std::string gradcam_layer;           // name of the layer whose activation is returned
  bool returns_activation = false;     // forward returns (logits, activation)
  nlohmann::json unet;                 // native U-Net architecture (format "native-unet")
  nlohmann::json provenance;           // how it was made: data, command, metrics
  std::filesystem::path path;          // where the card was read from

  int num_classes() const;             // highest label value + 1
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

// sha256 of a file, lowercase hex.
std::string sha256_file(const std::filesystem::path& path);

}  // namespace sagitta

#pragma once
// What training writes and reads back, without LibTorch: the JSON of labels, Dice, epochs and
// normalisation (card provenance and training.json), atomic file writes, and the Dice arithmetic
// of validation and evaluation.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/train.h"

namespace sagitta::segmentation::detail {

void write_json(const std::filesystem::path& path, const nlohmann::json& j);

nlohmann::json labels_json(const std::vector<LabelSpec>& labels);
LabelSpec label_from_json(const nlohmann::json& l);
// Labels 1..max_value kept as they are ("label_<v>").
std::vector<LabelSpec> identity_labels(int max_value);

nlohmann::json dice_json(const std::vector<LabelDice>& dice);
nlohmann::json epoch_json(const EpochStats& e);
EpochStats epoch_from_json(const nlohmann::json& j);

// training.json's form: scheme "ct", "zscore" or "none" (Fixed is written, and read, as "none").
nlohmann::json normalization_json(const Normalization& n);
Normalization normalization_from_json(const nlohmann::json& j);

// Dice per label between two label arrays of `n` values each.
std::vector<LabelDice> dice_per_label(const std::uint8_t* pred, const std::uint8_t* ref, std::size_t n,
                                      const std::vector<LabelSpec>& labels);
// Per label: the mean Dice over the cases where it is defined, voxel counts summed.
std::vector<LabelDice> mean_dice(const std::vector<std::vector<LabelDice>>& per_case);
// The mean of the defined Dice values (0 when none is).
double mean_of(const std::vector<LabelDice>& dice);

}  // namespace sagitta::segmentation::detail

#pragma once
// Tiny TorchScript models written from C++ (torch::jit::Module::define), with their cards, so
// the segmentation tests need neither Python nor shipped weights. Torch stays in script_models.cpp.
#include <filesystem>
#include <string>

#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/model.h"

namespace sagitta::testing {

// Kinds of model:
//  "pointwise"  per-voxel: 1x1 conv -> tanh -> 1x1 conv (exactly translation-equivariant)
//  "conv3"      3x3(x3) conv (zero padding) -> tanh -> 1x1 conv (receptive radius 1)
//  "threshold"  class 1 logit = 10 * (x - 1), class 0 logit = 0 (a threshold at x = 1)
//  "tuple"      "pointwise" returning (logits, hidden activation)
//  "one_channel" a 1x1 conv that takes exactly one input channel whatever the card says
//  "x_gradient" 3D, 2 classes: class 1 logit = x[x + 1] - x[x - 1] + 0.5 along x (zero padding),
//               class 0 logit = 0; mirrored along x it sees the opposite gradient
// Writes dir/model.pt and dir/model.json (card's weights/sha256 filled) and returns the card path.
std::filesystem::path write_script_model(const std::filesystem::path& dir, const std::string& kind,
                                         sagitta::ModelCard card);

// A native U-Net (unet.h) with random weights: dir/model.unet + dir/model.json; returns the card path.
std::filesystem::path write_native_unet(const std::filesystem::path& dir, sagitta::ModelCard card, int depth = 2,
                                        int base_channels = 4);

// The "threshold" model on a 3D card (2 classes, patch 16, 1.5 mm) whose class 1 ("dense") is
// where the CT-normalised value exceeds 1 (std 100): a ball of 400 in -50 is found. Returns the
// card path.
std::filesystem::path write_threshold_model(const std::filesystem::path& dir);

// A model loaded as the segmentation tests run them (2 LibTorch threads), from a card file or a
// card in memory.
segmentation::Model load_model(const std::filesystem::path& card_path);
segmentation::Model load_model(const sagitta::ModelCard& card);

// A card with `classes` labels, one CT-like channel (normalisation None unless changed).
sagitta::ModelCard test_card(int dimensions, int classes, int patch, double spacing = 1.0);

}  // namespace sagitta::testing

#pragma once
// Where models come from: a Sagitta card (model.json), a MONAI bundle folder (configs/metadata.json,
// configs/inference.json, models/model.ts). Each becomes a ModelCard that states everything the
// network needs (array convention, normalisation, windows, labels), so one pipeline runs them all.
// Torch-free.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/core/model_card.h"

namespace sagitta::segmentation {

struct ModelSourceOptions {
  bool verify_hash = true;  // Sagitta cards: check the weights' sha256
};

// `path` is a card file or a model folder of a known kind. Throws SegmentationError with one line
// naming the folder and what is missing or not understood.
ModelCard open_model(const std::filesystem::path& path, const ModelSourceOptions& options = {});

// True when `folder` looks like a MONAI bundle (configs/metadata.json).
bool is_monai_bundle(const std::filesystem::path& folder);

// A MONAI bundle's inference chain as a card: LoadImage, EnsureChannelFirst/AddChannel,
// Orientation(axcodes), Spacing(pixdim), ScaleIntensityRange, ScaleIntensityRangePercentiles,
// NormalizeIntensity, SlidingWindowInferer (roi_size, sw_batch_size, overlap, mode, sigma_scale),
// Activations, AsDiscrete(argmax), Invertd and the type/saving transforms that change no values;
// labels from metadata's output channel_def. Anything else is refused with the list of what was not
// understood. The weights are models/model.ts (TorchScript).
ModelCard card_from_monai_bundle(const std::filesystem::path& folder);

}  // namespace sagitta::segmentation

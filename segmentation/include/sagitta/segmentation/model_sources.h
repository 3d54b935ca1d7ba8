#pragma once
// Where models come from: a Sagitta card (model.json), a MONAI bundle folder (configs/metadata.json,
// configs/inference.json or .yaml, models/model.ts). Each becomes a ModelCard that states everything the
// network needs (array convention, normalisation, windows, labels), so one pipeline runs them all.
// Torch-free.
#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/core/model_card.h"

namespace sagitta::segmentation {

struct ModelSourceOptions {
  bool verify_hash = true;  // Sagitta cards: check the weights' sha256
  // nnU-Net results folders: the folds to average ("0".."4", "all"; empty: every fold_N with the
  // checkpoint, as nnU-Net's predictor finds them) and which checkpoint ("final" or "best").
  std::vector<std::string> folds;
  std::string checkpoint = "final";
};

// `path` is a card file or a model folder of a known kind. Throws SegmentationError with one line
// naming the folder and what is missing or not understood.
ModelCard open_model(const std::filesystem::path& path, const ModelSourceOptions& options = {});

// True when `folder` looks like a MONAI bundle (configs/metadata.json).
bool is_monai_bundle(const std::filesystem::path& folder);
// True when `folder` looks like an nnU-Net v2 results folder (plans.json and dataset.json).
bool is_nnunet_results_folder(const std::filesystem::path& folder);

// An nnU-Net v2 results folder (DatasetNNN_Name/<trainer>__<plans>__<configuration>) as a card of
// format "nnunet": the plans' network, one fold's checkpoint as the weights and the others as folds
// (their logits averaged, as nnU-Net does), labels or regions from dataset.json, the patch, and
// `path` = the folder, whose plans then drive nnU-Net's own preprocessing and export in
// preprocess() and segment(). Mirroring axes come from the checkpoint when the model loads.
ModelCard card_from_nnunet(const std::filesystem::path& folder, const ModelSourceOptions& options = {});

// A MONAI bundle's inference chain as a card: LoadImage, EnsureChannelFirst/AddChannel,
// Orientation(axcodes), Spacing(pixdim), ScaleIntensityRange, ScaleIntensityRangePercentiles,
// NormalizeIntensity, SlidingWindowInferer (roi_size, sw_batch_size, overlap, mode, sigma_scale),
// Activations, AsDiscrete(argmax), Invertd and the type/saving transforms that change no values;
// labels from metadata's output channel_def. Anything else is refused with the list of what was not
// understood. The weights are models/model.ts (TorchScript).
ModelCard card_from_monai_bundle(const std::filesystem::path& folder);

}  // namespace sagitta::segmentation

#pragma once
// Which tool's conventions a card runs with, as open_model marks the cards it reads from other
// tools' model folders (card.provenance "source"). The one place that reads those marks.
#include "sagitta/core/model_card.h"

namespace sagitta::segmentation::detail {

// card.provenance["source"] of the cards open_model makes from other tools' folders.
inline constexpr const char* kNNUNetSource = "nnU-Net v2 results folder";
inline constexpr const char* kMonaiSource = "MONAI bundle";
// card.provenance["labels"] of a bundle whose Invertd runs before AsDiscrete(argmax).
inline constexpr const char* kLabelsFromSourceProbabilities = "argmax of the probabilities on the source grid";

// An nnU-Net network read from its results folder (card_from_nnunet): nnU-Net's own data path.
bool runs_as_nnunet(const ModelCard& card);
// A MONAI bundle (card_from_monai_bundle): MONAI's Spacing grid and SlidingWindowInferer layout.
bool from_monai_bundle(const ModelCard& card);
// Labels as the argmax of the probabilities resampled (linearly) to the source grid, not the
// model grid's labels carried back by nearest neighbour (MONAI's Invertd before AsDiscrete).
bool labels_from_source_probabilities(const ModelCard& card);

}  // namespace sagitta::segmentation::detail

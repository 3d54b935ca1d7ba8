#pragma once
// Model card -> DICOM SEG metadata: segment descriptions (names, colours, SNOMED codes) and the
// algorithm identification, for every writer of SEGs from a model's labels (the CLI, the Slicer
// modules, library users).
#include <vector>

#include "sagitta/dicom/seg.h"
#include "sagitta/core/model_card.h"

namespace sagitta::dicom {

// One description per non-background card label, in label order: name, colour, and the card's
// SNOMED category/type codes, or for a few common organs known codes, or "Tissue".
// `present` (optional): only labels for which present[value] is true.
std::vector<SegmentDescription> segment_descriptions(const sagitta::ModelCard& card,
                                                                     const std::vector<bool>& present = {});

// Which label values occur in `labels` (index = value).
std::vector<bool> labels_present(const LabelMap& labels);

// Algorithm identification and series description from the card.
SegWriteOptions seg_write_options(const sagitta::ModelCard& card, const char* version);

}  // namespace sagitta::dicom

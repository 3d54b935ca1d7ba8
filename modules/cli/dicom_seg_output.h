#pragma once
// Model card labels -> DICOM SEG segment descriptions (the dicom library knows no model cards).
#include <vector>

#include "sagitta/dicom/seg.h"
#include "sagitta/segmentation/model_card.h"

namespace sagitta::cli {

// One description per non-background card label, in label order: name, colour, and the card's
// SNOMED category/type codes, or for a few common organs known codes, or "Tissue".
// `present` (optional): only labels for which present[value] is true.
std::vector<sagitta::dicom::SegmentDescription> segment_descriptions(const sagitta::segmentation::ModelCard& card,
                                                                     const std::vector<bool>& present = {});

// Which label values occur in `labels` (index = value).
std::vector<bool> labels_present(const sagitta::dicom::LabelMap& labels);

// Algorithm identification and series description from the card.
sagitta::dicom::SegWriteOptions seg_write_options(const sagitta::segmentation::ModelCard& card, const char* version);

}  // namespace sagitta::cli

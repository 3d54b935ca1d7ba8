// Scoring a trained native-unet model on image/label pairs through the product's inference path
// (sliding window on the model grid), with the Dice measured in the label map's own geometry.
#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "normalise.h"
#include "sagitta/dicom/error.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/core/model_card.h"
#include "sagitta/segmentation/sliding_window.h"
#include "sagitta/segmentation/train.h"
#include "train_data.h"
#include "train_records.h"

namespace sagitta::segmentation {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A float image on `grid`'s geometry holding `values`.
template <typename T>
Image::Pointer image_like(const Image& grid, const std::vector<T>& values) {
  auto image = Image::New();
  image->CopyInformation(&grid);
  image->SetRegions(grid.GetLargestPossibleRegion());
  image->Allocate();
  std::copy(values.begin(), values.end(), image->GetBufferPointer());
  return image;
}

// The product's inference path: Gaussian-weighted sliding windows of the card's patch size
// (instance-norm statistics then match training patches, unlike one full-volume forward), then
// the most likely class per voxel of `grid`.
std::vector<std::uint8_t> segment_on_grid(const ModelCard& card, const Image& grid, const std::vector<float>& values,
                                          int threads) {
  ModelOptions model_options;
  model_options.threads = threads;
  const Model model = Model::load(card, model_options);
  const auto windows = sliding_window(model, {image_like(grid, values)});
  std::vector<std::uint8_t> pred(values.size(), 0);
  std::vector<float> best(values.size(), -std::numeric_limits<float>::infinity());
  for (std::size_t k = 0; k < windows.logits.size(); ++k) {
    const float* l = windows.logits[k]->GetBufferPointer();
    for (std::size_t i = 0; i < pred.size(); ++i)
      if (l[i] > best[i]) best[i] = l[i], pred[i] = std::uint8_t(k);
  }
  return pred;
}

}  // namespace

namespace detail {

// The labels to score: given, else the mapping in the card's provenance, else the card's labels.
std::vector<LabelSpec> labels_to_score(const ModelCard& card, const std::vector<LabelSpec>& given) {
  std::vector<LabelSpec> labels = given;
  // `sagitta train` records its mapping as [{value, name, sources, color}]; imported models may
  // keep something else under the same key (a bundle's channel_def), which is not a mapping.
  const auto is_mapping = [](const nlohmann::json& l) { return l.is_object() && l.contains("sources"); };
  if (labels.empty() && card.provenance.contains("labels") && card.provenance["labels"].is_array() &&
      std::all_of(card.provenance["labels"].begin(), card.provenance["labels"].end(), is_mapping))
    for (const auto& l : card.provenance["labels"])
      labels.push_back(label_from_json(l));
  if (labels.empty())
    for (const auto& l : card.labels)
      if (l.value) labels.push_back({l.value, l.name, {l.value}, l.color});
  return labels;
}

Image::Pointer read_reference(const fs::path& path) {
  try {
    return sagitta::read_volume(path);
  } catch (const sagitta::Error& e) {
    throw SegmentationError(e.what());
  }
}

}  // namespace detail

std::vector<LabelDice> evaluate_model(const fs::path& card_path, const TrainingPair& pair,
                                      const std::vector<LabelSpec>& given, int threads) {
  const auto card = load_card(card_path);
  if (card.format != "native-unet")
    throw SegmentationError(card_path.string() + ": evaluate_model needs a native-unet model");
  const std::vector<LabelSpec> labels = detail::labels_to_score(card, given);
  if (card.channels.size() != 1) throw SegmentationError("evaluate_model handles single-channel models");

  const auto image = detail::read_image(pair.image, pair.series);
  std::array<double, 3> spacing{};
  for (int a = 0; a < 3; ++a)
    spacing[a] = a < int(card.spacing.size()) ? card.spacing[std::size_t(a)] : image->GetSpacing()[a];
  auto grid_image = detail::resample_canonical(*image, spacing, false, -1024.0f);
  std::vector<float> values(grid_image->GetBufferPointer(),
                            grid_image->GetBufferPointer() + grid_image->GetBufferedRegion().GetNumberOfPixels());
  detail::normalise(values, card.channels.front().normalization);
  const auto pred = segment_on_grid(card, *grid_image, values, threads);

  // Back to the label map's own grid: the Dice is measured where the reference was drawn.
  const auto reference = detail::read_reference(pair.label);
  auto pred_on_ref = detail::resample_like(*image_like(*grid_image, pred), *reference, true, 0.0f);
  std::vector<LabelSpec> identity;
  for (const auto& l : labels) identity.push_back({l.value, l.name, {l.value}, l.color});
  const auto pred_labels = detail::remap_labels(*pred_on_ref, identity);
  const auto ref_labels = detail::remap_labels(*reference, labels);
  return detail::dice_per_label(pred_labels.data(), ref_labels.data(), ref_labels.size(), labels);
}

std::vector<std::vector<LabelDice>> evaluate_into_card(const fs::path& card_path, const std::vector<TrainingPair>& tests,
                                                       const std::vector<LabelSpec>& labels, int threads) {
  std::vector<std::vector<LabelDice>> results;
  for (const auto& t : tests) results.push_back(evaluate_model(card_path, t, labels, threads));
  // Held-out results go into the card's provenance: whoever uses the model sees them.
  auto card = load_card(card_path);
  json j = json::array();
  for (std::size_t i = 0; i < tests.size(); ++i)
    j.push_back({{"image", provenance_path(tests[i].image, card_path.parent_path())},
                 {"label", provenance_path(tests[i].label, card_path.parent_path())},
                 {"method", "sliding window on the axis-aligned model grid, Dice in the label map's geometry"},
                 {"dice", detail::dice_json(results[i])}});
  card.provenance["test"] = j;
  save_card(card, card_path);
  return results;
}

}  // namespace sagitta::segmentation

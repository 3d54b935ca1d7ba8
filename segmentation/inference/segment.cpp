// The segmentation pipeline of one volume, in the order of the design's data flow.
#include "sagitta/segmentation/segment.h"

#include <malloc.h>

#include <chrono>
#include <cmath>

#include "sagitta/core/image.h"
#include "sagitta/segmentation/error.h"
#include "confidence.h"
#include "model_conventions.h"
#include "nnunet_pipeline.h"
#include "scores.h"
#include "window_engine.h"

namespace sagitta::segmentation {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One finished block of averaged logits (classes x z y x) into the model
// grid's labels (argmax of the logits: the same class as the argmax of their softmax) and, when
// asked, per-class probabilities.
// Region-based (sigmoid) models: a voxel takes the value of every region whose probability exceeds
// 0.5 (logit > 0), in card order, so later regions win.
// The model-grid maps a study's review reads (see StructureConfidence): the winning probability
// and the normalised entropy per voxel.
struct ConfidenceMaps {
  Image::Pointer top, entropy;
  Image::Pointer disagreement;  // with mirroring: see engine::forward
};

void write_block(const engine::Block& block, const ModelCard& card, LabelImage& labels,
                 std::vector<Image::Pointer>& probabilities, ConfidenceMaps& confidence) {
  torch::Tensor v = block.values.contiguous();
  const int64_t classes = v.size(0), nz = v.size(1), ny = v.size(2), nx = v.size(3);
  const std::size_t n = std::size_t(nz * ny * nx);
  std::vector<float*> planes;
  for (int64_t c = 0; c < classes; ++c) planes.push_back(v.data_ptr<float>() + std::size_t(c) * n);
  std::vector<float> top(n), entropy(n);
  std::vector<std::uint16_t> block_labels(n);
  // Per voxel, so the block's voxels are shared out between the threads.
  at::parallel_for(0, int64_t(n), 4096, [&](int64_t i0, int64_t i1) {
    const std::size_t at = std::size_t(i0), count = std::size_t(i1 - i0);
    std::vector<float*> part;
    for (float* p : planes) part.push_back(p + at);
    const bool sigmoid = !card.regions.empty();
    detail::confidence_from_scores({part.begin(), part.end()}, count, sigmoid, top.data() + at, entropy.data() + at,
                                   sigmoid ? nullptr : block_labels.data() + at);
    if (!sigmoid && !probabilities.empty()) detail::softmax_in_place(part, count);
  });
  if (!card.regions.empty()) {
    std::vector<std::uint16_t> values;
    for (const auto& r : card.regions) values.push_back(std::uint16_t(r.value));
    detail::region_labels_into({planes.begin(), planes.end()}, values, n, block_labels.data());
    if (!probabilities.empty())
      for (float* p : planes)
        for (std::size_t i = 0; i < n; ++i) p[i] = 1.0f / (1.0f + std::exp(-p[i]));
  }
  const auto size = labels.GetBufferedRegion().GetSize();
  const std::size_t row = std::size_t(nx);
  for (int64_t z = 0; z < nz; ++z)
    for (int64_t y = 0; y < ny; ++y) {
      const std::size_t from = std::size_t(z * ny + y) * row;
      const std::size_t at = (std::size_t(block.z0 + z) * size[1] + std::size_t(block.y0 + y)) * size[0] + std::size_t(block.x0);
      std::copy_n(block_labels.data() + from, row, labels.GetBufferPointer() + at);
      std::copy_n(top.data() + from, row, confidence.top->GetBufferPointer() + at);
      std::copy_n(entropy.data() + from, row, confidence.entropy->GetBufferPointer() + at);
      for (std::size_t c = 0; c < probabilities.size(); ++c)
        std::copy_n(planes[c] + from, row, probabilities[c]->GetBufferPointer() + at);
    }
}

// A MONAI bundle's KeepLargestConnectedComponent(applied_labels) on top of the options' rules.
PostprocessOptions bundle_postprocess(const ModelCard& card, PostprocessOptions p, nlohmann::json& decisions) {
  if (!detail::from_monai_bundle(card) || !card.provenance.contains("keep_largest_component")) return p;
  const auto& labels = card.provenance["keep_largest_component"];
  if (!labels.is_array()) return p;
  p.largest_component = true;
  p.labels.clear();
  for (const auto& l : labels)
    if (l.is_number_integer()) p.labels.push_back(l.get<int>());
  decisions.push_back("the bundle's KeepLargestConnectedComponent: 6-connected components (MONAI's default counts "
                      "diagonal neighbours too)");
  return p;
}

// The class whose probability is largest per voxel (the first of equals), as labels.
LabelImage::Pointer argmax_labels(const std::vector<Image::Pointer>& probabilities, const itk::ImageBase<3>& grid) {
  auto labels = sagitta::new_like<LabelImage>(grid, 0);
  const std::size_t n = labels->GetBufferedRegion().GetNumberOfPixels();
  std::vector<const float*> planes;
  for (const auto& p : probabilities) planes.push_back(p->GetBufferPointer());
  detail::argmax_into(planes, n, labels->GetBufferPointer());
  return labels;
}

// A card read from a MONAI bundle lays out and blends its windows as MONAI's SlidingWindowInferer
// (scan intervals, importance map, zero padding); the others as the options say.
SlidingWindowOptions window_rules(const ModelCard& card, SlidingWindowOptions w) {
  if (detail::from_monai_bundle(card)) {
    w.step_rule = StepRule::Monai;
    w.importance = ImportanceMap::Monai;
    w.pad = PadRule::Zero;
  }
  return w;
}

}  // namespace

Segmentation segment(const Model& model, const std::vector<Image::Pointer>& inputs, const SegmentOptions& options) {
  return segment(model, inputs, preprocess(inputs, model.card(), options.preprocess), options);
}

Segmentation segment(const Model& model, const std::vector<Image::Pointer>& inputs, Preprocessed pre,
                     const SegmentOptions& options) {
  if (pre.nnunet_plan) return detail::segment_nnunet(model, inputs, std::move(pre), options);
  const ModelCard& card = model.card();
  nlohmann::json decisions = nlohmann::json::array();
  auto note = [&](const std::vector<std::string>& list) {
    for (const auto& d : list) decisions.push_back(d);
  };
  note(model.notes());

  if (pre.channels.size() != inputs.size() || pre.channels.empty())
    throw SegmentationError("internal: the preprocessed inputs do not match the inputs");
  const double t_pre = pre.seconds;
  note(pre.decisions);
  const nlohmann::json model_grid = sagitta::geometry_json(*pre.channels[0]);

  // Blocks of averaged logits become model-grid labels (and probabilities when asked) as soon as
  // no later window adds to them; the logits of the whole volume never exist at once.
  const Image& grid = *pre.channels[0];
  auto model_labels = sagitta::new_like<LabelImage>(grid, 0);
  std::vector<Image::Pointer> probabilities;
  const bool argmax_on_source = detail::labels_from_source_probabilities(card) && card.regions.empty();
  if (options.probabilities || argmax_on_source)
    for (int k = 0; k < model.num_classes(); ++k) probabilities.push_back(sagitta::new_like<Image>(grid, 0.0f));
  ConfidenceMaps confidence{sagitta::new_like<Image>(grid, 0.0f), sagitta::new_like<Image>(grid, 0.0f), nullptr};
  double t_blocks = 0;
  const auto sink = [&](const engine::Block& block) {
    const auto tb = Clock::now();
    write_block(block, card, *model_labels, probabilities, confidence);
    t_blocks += since(tb);
  };
  const auto disagreement_sink = [&](const engine::Block& block) {
    if (!confidence.disagreement) confidence.disagreement = sagitta::new_like<Image>(grid, 0.0f);
    const torch::Tensor v = block.values[0];
    engine::view(*confidence.disagreement)
        .narrow(0, block.z0, v.size(0))
        .narrow(1, block.y0, v.size(1))
        .narrow(2, block.x0, v.size(2))
        .copy_(v);
  };
  // What reading and preprocessing freed (a volume's worth of file-typed pixels, resampling
  // buffers) goes back to the system before the windows start: the command keeps freed heap
  // memory for the forward passes to reuse (keep_freed_memory), not the loaders' leftovers.
  ::malloc_trim(0);
  auto t = Clock::now();
  SlidingWindowResult window =
      engine::stream_windows(model, pre.channels, window_rules(card, options.window), sink, disagreement_sink);
  pre.channels.clear();  // the normalised inputs are no longer needed: free them before resampling
  note(window.decisions);

  t = Clock::now();
  Segmentation out;
  const auto model_size = model_labels->GetLargestPossibleRegion().GetSize();
  out.confidence = detail::structure_confidence(model_labels->GetBufferPointer(), confidence.top->GetBufferPointer(),
                                                confidence.entropy->GetBufferPointer(),
                                                {model_size[0], model_size[1], model_size[2]}, card,
                                                confidence.disagreement ? confidence.disagreement->GetBufferPointer()
                                                                        : nullptr);
  confidence = {};
  if (!argmax_on_source) out.labels = labels_to_source(*model_labels, *inputs[0]);
  model_labels = nullptr;
  for (std::size_t k = 0; k < probabilities.size(); ++k) {
    out.probabilities.push_back(probability_to_source(*probabilities[k], *inputs[0], k == 0 && card.regions.empty() ? 1.0f : 0.0f));
    probabilities[k] = nullptr;
  }
  if (argmax_on_source) {
    out.labels = argmax_labels(out.probabilities, *inputs[0]);
    if (!options.probabilities) out.probabilities.clear();
    decisions.push_back("labels: the argmax of the probabilities resampled linearly to the source grid (the bundle "
                        "inverts its transforms before AsDiscrete)");
  }
  if (pre.resampled || pre.cropped)
    decisions.push_back(std::string("labels mapped back to the source grid by nearest neighbour") +
                        (options.probabilities ? ", probabilities by linear interpolation" : ""));
  const double t_back = since(t);

  t = Clock::now();
  note(postprocess(*out.labels, bundle_postprocess(card, options.postprocess, decisions)));
  out.statistics = label_statistics(*out.labels, inputs[0].GetPointer(), card);
  const double t_post = since(t);

  nlohmann::json stats = nlohmann::json::array();
  for (const auto& s : out.statistics) stats.push_back(to_json(s));
  out.report = {{"model_grid", model_grid},
                {"windows", {{"count", window.windows},
                             {"patch", window.patch},
                             {"forward_passes", window.forward_passes},
                             {"overlap", options.window.overlap},
                             {"batch_size", options.window.batch_size},
                             {"mirror", options.window.mirror}}},
                {"device", model.device()},
                {"decisions", decisions},
                {"memory_bytes", {{"logit_tiles_peak", window.accumulator_peak_bytes}}},
                {"timings_s", {{"preprocess", t_pre},
                               {"inference", window.total_seconds},
                               {"forward", window.forward_seconds},
                               {"labels_from_logits", t_blocks},
                               {"to_source_grid", t_back},
                               {"postprocess", t_post}}},
                {"labels", stats}};
  nlohmann::json confidence_json = nlohmann::json::array();
  for (const auto& c : out.confidence) confidence_json.push_back(detail::to_json(c));
  out.report["confidence"] = confidence_json;
  return out;
}

}  // namespace sagitta::segmentation

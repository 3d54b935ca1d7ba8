// The segmentation pipeline of one volume, in the order of the design's data flow.
#include "sagitta/segmentation/segment.h"

#include <chrono>

#include "sagitta/segmentation/error.h"

namespace sagitta::segmentation {
namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

Segmentation segment(const Model& model, const std::vector<Image::Pointer>& inputs, const SegmentOptions& options) {
  const ModelCard& card = model.card();
  nlohmann::json decisions = nlohmann::json::array();
  auto note = [&](const std::vector<std::string>& list) {
    for (const auto& d : list) decisions.push_back(d);
  };
  note(model.notes());

  auto t = Clock::now();
  Preprocessed pre = preprocess(inputs, card, options.preprocess);
  const double t_pre = since(t);
  note(pre.decisions);
  const nlohmann::json model_grid = sagitta::geometry_json(*pre.channels[0]);

  SlidingWindowResult window = sliding_window(model, pre.channels, options.window);
  pre.channels.clear();  // the normalised inputs are no longer needed: free them before resampling
  note(window.decisions);

  t = Clock::now();
  softmax(window.logits);
  std::vector<Image::Pointer>& probabilities = window.logits;
  LabelImage::Pointer model_labels = argmax(probabilities);
  Segmentation out;
  out.labels = labels_to_source(*model_labels, *inputs[0]);
  model_labels = nullptr;
  if (options.probabilities)
    for (std::size_t k = 0; k < probabilities.size(); ++k)
      out.probabilities.push_back(probability_to_source(*probabilities[k], *inputs[0], k == 0 ? 1.0f : 0.0f));
  probabilities.clear();
  if (pre.resampled || pre.cropped)
    decisions.push_back(std::string("labels mapped back to the source grid by nearest neighbour") +
                        (options.probabilities ? ", probabilities by linear interpolation" : ""));
  const double t_back = since(t);

  t = Clock::now();
  note(postprocess(*out.labels, options.postprocess));
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
                {"timings_s", {{"preprocess", t_pre},
                               {"inference", window.total_seconds},
                               {"forward", window.forward_seconds},
                               {"to_source_grid", t_back},
                               {"postprocess", t_post}}},
                {"labels", stats}};
  return out;
}

}  // namespace sagitta::segmentation

// An explanation's files among a command's staged outputs (see explain_outputs.h).
#include "explain_outputs.h"

#include <cctype>

#include "sagitta/core/volume_io.h"
#include "sagitta/explain/error.h"

namespace sagitta::cli {
namespace xp = sagitta::explain;
namespace {

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' ? c : '_';
  return out;
}

// Window/level of the pictures: CT models 400/40, else the volume's 1st-99th percentiles.
void choose_window(PictureOptions& options, const Image& volume, const ModelCard& card) {
  if (!options.auto_window) return;
  const bool ct = !card.channels.empty() && card.channels[0].normalization.scheme == Normalization::Scheme::CT;
  if (ct) {
    options.overlay.window = 400, options.overlay.level = 40;
  } else {
    const auto wl = xp::auto_window_level(volume);
    options.overlay.window = wl[0], options.overlay.level = wl[1];
  }
}

// One label's heatmap, its most salient slice and the montage of the salient slices.
nlohmann::json write_label_files(const xp::LabelExplanation& l, const Image& volume, StagedOutputs& out,
                                 const std::string& ext, const PictureOptions& options, const std::string& tag) {
  write_volumes({l.heatmap}, out.add("heatmap" + tag + ext), {OutputPixelType::Float, true});
  const std::vector<int> slices = xp::salient_slices(*l.heatmap, options.slices);
  std::vector<xp::RgbImage::Pointer> tiles;
  for (int z : slices) tiles.push_back(xp::overlay_slice(volume, *l.heatmap, l.target.GetPointer(), z, options.overlay));
  // The single overlay is the most salient slice; the montage shows them all in slice order.
  const int best = xp::salient_slices(*l.heatmap, 1).front();
  xp::write_png(*xp::overlay_slice(volume, *l.heatmap, l.target.GetPointer(), best, options.overlay),
                out.add("overlay" + tag + ".png"));
  xp::write_png(*xp::montage(tiles, 3), out.add("montage" + tag + ".png"));
  return {{"label", l.name},
          {"overlay", "overlay" + tag + ".png"},
          {"overlay_slice", best},
          {"montage", "montage" + tag + ".png"},
          {"montage_slices", slices}};
}

}  // namespace

nlohmann::json write_explanation_files(const xp::Explanation& e, const Image& volume, const ModelCard& card,
                                       StagedOutputs& out, const std::string& ext, PictureOptions options, bool suffix) {
  choose_window(options, volume, card);
  nlohmann::json pictures = nlohmann::json::array();
  for (const auto& l : e.labels)
    pictures.push_back(write_label_files(l, volume, out, ext, options, suffix ? "_" + safe_name(l.name) : ""));
  if (e.uncertainty) write_volumes({e.uncertainty}, out.add("uncertainty" + ext), {OutputPixelType::Float, true});
  return {{"colormap", xp::colormap_name(options.overlay.map)},
          {"opacity", options.overlay.opacity},
          {"threshold", options.overlay.threshold},
          {"window", options.overlay.window},
          {"level", options.overlay.level},
          {"slices", "axial (third index axis), x right, y down; target outlined in white"},
          {"labels", pictures}};
}

xp::Explanation segment_and_explain(const segmentation::Model& model, const std::vector<Image::Pointer>& inputs,
                                    const segmentation::SegmentOptions& options) {
  xp::ExplainOptions eo;
  eo.method = xp::Method::GradCam;
  eo.segment = options;
  // Faithfulness and sanity checks cost extra passes: `sagitta explain` runs them.
  eo.deletion = false;
  eo.sanity = false;
  eo.skip_empty = true;
  if (options.window.progress)
    eo.progress = [&options](const std::string&, int done, int total) { return options.window.progress(done, total); };
  try {
    xp::check_method(model.card(), eo.method);
    return xp::explain(model, inputs, {}, eo);
  } catch (const xp::ExplainError& e) {
    throw xp::ExplainError(std::string("--explain: ") + e.what());
  }
}

void add_explanation_outputs(const xp::Explanation& e, const Image& volume, const ModelCard& card, StagedOutputs& out,
                             const std::string& ext, nlohmann::json& report) {
  report["pictures"] = write_explanation_files(e, volume, card, out, ext, PictureOptions{}, true);
  report["explanation"] = e.report;
}

}  // namespace sagitta::cli

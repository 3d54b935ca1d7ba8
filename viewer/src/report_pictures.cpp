// The pictures of a study's report, in memory (report_pictures.h).
#include "sagitta/viewer/report_pictures.h"

#include <fmt/format.h>

#include <cmath>

#include "sagitta/viewer/offscreen_render.h"

namespace sagitta::viewer {
namespace {

// The LPS point of the heatmap's largest finite value (the volume's centre when it is all zero).
Vec3 peak(const Image& heatmap, const Scene& scene) {
  const float* p = heatmap.GetBufferPointer();
  const std::size_t n = heatmap.GetLargestPossibleRegion().GetNumberOfPixels();
  std::size_t best = n;
  for (std::size_t i = 0; i < n; ++i)
    if (std::isfinite(p[i]) && p[i] > 0 && (best == n || p[i] > p[best])) best = i;
  if (best == n) return scene.centre();
  const auto size = heatmap.GetLargestPossibleRegion().GetSize();
  Image::IndexType index;
  index[0] = long(best % size[0]), index[1] = long(best / size[0] % size[1]), index[2] = long(best / (size[0] * size[1]));
  Image::PointType point;
  heatmap.TransformIndexToPhysicalPoint(index, point);
  return {point[0], point[1], point[2]};
}

std::string count_text(const Scene& scene) {
  std::size_t labelled = 0;
  for (std::size_t v = 1; v < scene.label_counts().size(); ++v) labelled += scene.label_counts()[v] > 0;
  return labelled == 1 ? "1 structure" : fmt::format("{} structures", labelled);
}

}  // namespace

std::vector<ReportPicture> study_pictures(const Scene& scene, const std::vector<std::pair<std::string, Image::Pointer>>& heatmaps,
                                          const StudyPictureOptions& options) {
  std::vector<ReportPicture> pictures;
  const int w = options.width, small = std::max(64, options.width * 3 / 4);
  const auto window = fmt::format("W {:g} L {:g}", scene.display.window.window, scene.display.window.level);

  RenderRequest montage;
  montage.layout = Layout::Montage;
  montage.montage_count = options.montage_count;
  montage.width = montage.height = w;
  pictures.push_back({"Slices with labels",
                      fmt::format("{} axial slices spread over the labelled range, labels filled ({}), {}; radiological "
                                  "convention (patient's right on the left).",
                                  options.montage_count, scene.labels() ? count_text(scene) : "no label map", window),
                      png_bytes(render_image(scene, montage))});

  for (const auto& [name, map] : heatmaps) {
    Scene view(const_cast<Image*>(scene.volume()), const_cast<LabelImage*>(scene.labels()), map, scene.modality());
    view.display = scene.display;
    view.display.label_outline = true;
    view.label_table = scene.label_table;
    RenderRequest r;
    r.layout = Layout::Axial;
    r.focus = peak(*map, view);
    r.width = r.height = small;
    pictures.push_back({"Heatmap: " + name,
                        fmt::format("Grad-CAM map over the axial slice through its peak, labels outlined; values below "
                                    "{:g} of the maximum are transparent; {}.",
                                    view.display.heatmap.threshold, window),
                        png_bytes(render_image(view, r))});
  }

  if (scene.labels() && scene.max_label() > 0) {
    RenderRequest r;
    r.layout = Layout::ThreeD;
    r.width = r.height = small;
    // Raised toward the head: a thin slab (a few slices) seen edge-on from the front is a line.
    r.elevation = 35;
    pictures.push_back({"3D surfaces",
                        "Smoothed surfaces of the labels in their colours, seen from the front (patient's left on the "
                        "right), the camera raised 35° toward the head.",
                        png_bytes(render_image(scene, r))});
  }
  return pictures;
}

}  // namespace sagitta::viewer

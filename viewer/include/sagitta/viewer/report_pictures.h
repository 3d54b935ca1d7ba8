#pragma once
// The pictures of a study's HTML report (html_report.h), rendered offscreen in memory: a montage of
// axial slices with the labels, one view per heatmap through its peak (labels outlined), and the
// 3D label surfaces. Needs an X display (Xvfb works): check display_available() first.
#include <string>
#include <utility>
#include <vector>

#include "sagitta/viewer/html_report.h"
#include "sagitta/viewer/scene.h"

namespace sagitta::viewer {

struct StudyPictureOptions {
  int width = 960;         // of each picture (montage square; heatmap views and 3D 3/4 of it)
  int montage_count = 9;   // axial slices of the montage, spread over the labelled slices
};

// `scene` holds the volume, labels (optional), label table and window; each heatmap (a name and
// a map on the volume's grid) gets its own view. Throws ViewerError without a display.
std::vector<ReportPicture> study_pictures(const Scene& scene, const std::vector<std::pair<std::string, Image::Pointer>>& heatmaps,
                                          const StudyPictureOptions& options = {});

}  // namespace sagitta::viewer

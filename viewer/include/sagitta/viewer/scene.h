#pragma once
// What is shown: a volume, an optional label map and heatmap on the volume's grid, and how they
// are displayed. Views (slice_view.h, surface_view.h) render a Scene; the offscreen renderer and
// the interactive viewer are layouts of views.
#include <vtkImageData.h>
#include <vtkMatrix4x4.h>
#include <vtkSmartPointer.h>

#include <string>

#include "sagitta/core/colormap.h"
#include "sagitta/viewer/overlays.h"
#include "sagitta/viewer/window_level.h"

namespace sagitta::viewer {

using Colormap = sagitta::ColorMap;  // the floor's colour maps (sagitta/core/colormap.h)
Colormap parse_colormap(const std::string& name);  // throws ViewerError for unknown names

struct HeatmapStyle {
  Colormap colormap = Colormap::Jet;
  double threshold = 0.2;  // values below are transparent
  double maximum = 0;      // value mapped to the top of the colormap; 0: the heatmap's maximum
  double opacity = 0.5;
  bool visible = true;
};

struct DisplaySettings {
  WindowLevel window;
  bool labels_visible = true;
  double label_opacity = 1.0;  // global factor on every label's own opacity
  bool label_outline = false;  // outline instead of fill
  HeatmapStyle heatmap;
  bool annotations = true;     // orientation letters, slice position, W/L, scale bar, legend
  bool volume_rendering = false;  // 3D view: volume rendering behind the surfaces
};

// Owns the images (ITK) and their zero-copy VTK views; settings are plain values that views read
// on each update.
class Scene {
public:
  // `labels` and `heatmap` may be null; when given they must share the volume's geometry
  // (overlays.h reads and resamples them). Throws ViewerError otherwise.
  Scene(Image::Pointer volume, LabelImage::Pointer labels = nullptr, Image::Pointer heatmap = nullptr,
        std::string modality = "");

  const Image* volume() const { return volume_; }
  const LabelImage* labels() const { return labels_; }
  const Image* heatmap() const { return heatmap_; }
  const std::string& modality() const { return modality_; }

  // Index-space VTK views of the buffers (see itk_to_vtk.h) and the index -> LPS matrix.
  vtkImageData* volume_index_space() const { return volume_vtk_; }
  vtkImageData* labels_index_space() const { return labels_vtk_; }
  vtkImageData* heatmap_index_space() const { return heatmap_vtk_; }
  vtkMatrix4x4* index_to_patient() const { return index_to_patient_; }
  vtkMatrix4x4* patient_to_index() const { return patient_to_index_; }

  int max_label() const { return max_label_; }
  double heatmap_max() const { return heatmap_max_; }
  // Voxel counts per label value (index = value).
  const std::vector<std::size_t>& label_counts() const { return label_counts_; }

  // The centre of the volume (LPS), and a sensible point to look at: the centroid of the labels,
  // else the heatmap's maximum, else the centre.
  Vec3 centre() const;
  Vec3 focus_point() const;

  DisplaySettings display;
  LabelTable label_table;

private:
  Image::Pointer volume_;
  LabelImage::Pointer labels_;
  Image::Pointer heatmap_;
  std::string modality_;
  vtkSmartPointer<vtkImageData> volume_vtk_, labels_vtk_, heatmap_vtk_;
  vtkSmartPointer<vtkMatrix4x4> index_to_patient_, patient_to_index_;
  int max_label_ = 0;
  double heatmap_max_ = 0;
  std::vector<std::size_t> label_counts_;
};

}  // namespace sagitta::viewer

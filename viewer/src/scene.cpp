#include "sagitta/viewer/scene.h"

#include <itkImageRegionConstIteratorWithIndex.h>

#include <algorithm>
#include <cmath>

#include "sagitta/viewer/error.h"
#include "sagitta/viewer/itk_to_vtk.h"

namespace sagitta::viewer {

Colormap parse_colormap(const std::string& name) {
  if (name == "hot") return Colormap::Hot;
  if (name == "jet") return Colormap::Jet;
  if (name == "viridis") return Colormap::Viridis;
  throw ViewerError("unknown colour map '" + name + "' (hot, jet or viridis)");
}

std::array<double, 3> colormap_rgb(Colormap map, double t) {
  t = std::clamp(t, 0.0, 1.0);
  // Piecewise-linear control points: enough to reproduce each map's look without a table file.
  using Stop = std::array<double, 4>;  // t, r, g, b
  static const std::vector<Stop> hot{{0, 0.3, 0, 0}, {0.4, 1, 0, 0}, {0.75, 1, 1, 0}, {1, 1, 1, 1}};
  static const std::vector<Stop> jet{{0, 0, 0, 0.5}, {0.11, 0, 0, 1}, {0.36, 0, 1, 1}, {0.5, 0.5, 1, 0.5},
                                     {0.64, 1, 1, 0}, {0.89, 1, 0, 0}, {1, 0.5, 0, 0}};
  static const std::vector<Stop> viridis{{0, 0.267, 0.005, 0.329}, {0.25, 0.229, 0.322, 0.546},
                                         {0.5, 0.128, 0.567, 0.551}, {0.75, 0.369, 0.789, 0.383},
                                         {1, 0.993, 0.906, 0.144}};
  const auto& stops = map == Colormap::Hot ? hot : map == Colormap::Jet ? jet : viridis;
  for (std::size_t i = 1; i < stops.size(); ++i) {
    if (t <= stops[i][0]) {
      const double f = (t - stops[i - 1][0]) / (stops[i][0] - stops[i - 1][0]);
      return {stops[i - 1][1] + f * (stops[i][1] - stops[i - 1][1]), stops[i - 1][2] + f * (stops[i][2] - stops[i - 1][2]),
              stops[i - 1][3] + f * (stops[i][3] - stops[i - 1][3])};
    }
  }
  return {stops.back()[1], stops.back()[2], stops.back()[3]};
}

Scene::Scene(Image::Pointer volume, LabelImage::Pointer labels, Image::Pointer heatmap, std::string modality)
    : volume_(std::move(volume)), labels_(std::move(labels)), heatmap_(std::move(heatmap)), modality_(std::move(modality)) {
  if (!volume_) throw ViewerError("no volume to show");
  if (labels_ && !same_geometry(volume_, labels_))
    throw ViewerError("the label map is not on the volume's grid (" + geometry_difference(volume_, labels_) + ")");
  if (heatmap_ && !same_geometry(volume_, heatmap_))
    throw ViewerError("the heatmap is not on the volume's grid (" + geometry_difference(volume_, heatmap_) + ")");
  volume_vtk_ = to_vtk_index_space(volume_.GetPointer());
  index_to_patient_ = viewer::index_to_patient(volume_.GetPointer());
  patient_to_index_ = vtkSmartPointer<vtkMatrix4x4>::New();
  vtkMatrix4x4::Invert(index_to_patient_, patient_to_index_);
  if (labels_) {
    labels_vtk_ = to_vtk_index_space(labels_.GetPointer());
    label_counts_ = label_voxel_counts(labels_);
    max_label_ = static_cast<int>(label_counts_.size()) - 1;
  }
  if (heatmap_) {
    heatmap_vtk_ = to_vtk_index_space(heatmap_.GetPointer());
    const float* p = heatmap_->GetBufferPointer();
    const std::size_t n = heatmap_->GetLargestPossibleRegion().GetNumberOfPixels();
    for (std::size_t i = 0; i < n; ++i)
      if (std::isfinite(p[i])) heatmap_max_ = std::max(heatmap_max_, double(p[i]));
  }
  label_table = LabelTable::defaults(max_label_);
  display.window = default_window(volume_, modality_);
}

Vec3 Scene::centre() const {
  const auto size = volume_->GetLargestPossibleRegion().GetSize();
  itk::ContinuousIndex<double, 3> c;
  for (unsigned d = 0; d < 3; ++d) c[d] = (double(size[d]) - 1) / 2;
  itk::Point<double, 3> p;
  volume_->TransformContinuousIndexToPhysicalPoint(c, p);
  return {p[0], p[1], p[2]};
}

Vec3 Scene::focus_point() const {
  if (labels_ && max_label_ > 0) {
    // Centroid of every labelled voxel.
    std::array<double, 3> sum{0, 0, 0};
    double count = 0;
    itk::ImageRegionConstIteratorWithIndex<LabelImage> it(labels_, labels_->GetLargestPossibleRegion());
    for (; !it.IsAtEnd(); ++it) {
      if (it.Get() == 0) continue;
      for (unsigned d = 0; d < 3; ++d) sum[d] += double(it.GetIndex()[d]);
      count += 1;
    }
    itk::ContinuousIndex<double, 3> c;
    for (unsigned d = 0; d < 3; ++d) c[d] = sum[d] / count;
    itk::Point<double, 3> p;
    volume_->TransformContinuousIndexToPhysicalPoint(c, p);
    return {p[0], p[1], p[2]};
  }
  if (heatmap_ && heatmap_max_ > 0) {
    itk::ImageRegionConstIteratorWithIndex<Image> it(heatmap_, heatmap_->GetLargestPossibleRegion());
    for (; !it.IsAtEnd(); ++it) {
      if (double(it.Get()) < heatmap_max_) continue;
      itk::Point<double, 3> p;
      volume_->TransformIndexToPhysicalPoint(it.GetIndex(), p);
      return {p[0], p[1], p[2]};
    }
  }
  return centre();
}

}  // namespace sagitta::viewer

// What is shown: a volume, an optional label map and heatmap on the volume's grid, and how they are
// displayed (the declarations and their contract: sagitta/viewer/scene.h).
#include "sagitta/viewer/scene.h"

#include <itkImageRegionConstIteratorWithIndex.h>

#include <algorithm>
#include <cmath>

#include "sagitta/viewer/error.h"
#include "sagitta/viewer/itk_to_vtk.h"

namespace sagitta::viewer {

Colormap parse_colormap(const std::string& name) {
  if (const auto map = sagitta::parse_colormap(name)) return *map;
  throw ViewerError("unknown colour map '" + name + "' (hot, jet, inferno or viridis)");
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

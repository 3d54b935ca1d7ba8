// The 3D view of a Scene: smoothed label surfaces in patient coordinates (and optionally the volume
// rendered behind them), seen from the anterior with superior up and patient left on the right,
// like the coronal view (the declarations and their contract: sagitta/viewer/surface_view.h).
#include "sagitta/viewer/surface_view.h"

#include <vtkActor.h>
#include <vtkCamera.h>
#include <vtkColorTransferFunction.h>
#include <vtkPiecewiseFunction.h>
#include <vtkPolyDataMapper.h>
#include <vtkProperty.h>
#include <vtkRenderer.h>
#include <vtkSmartVolumeMapper.h>
#include <vtkTextActor.h>
#include <vtkTextProperty.h>
#include <vtkVolume.h>
#include <vtkVolumeProperty.h>

#include <algorithm>
#include <vector>

namespace sagitta::viewer {

struct SurfaceView::Impl {
  const Scene& scene;
  vtkNew<vtkRenderer> renderer;
  std::vector<LabelSurface> surfaces;
  std::vector<vtkSmartPointer<vtkActor>> actors;
  vtkSmartPointer<vtkVolume> volume;
  vtkNew<vtkTextActor> title;
  explicit Impl(const Scene& s) : scene(s) {}
};

SurfaceView::SurfaceView(const Scene& scene, const SurfaceOptions& options) : impl_(std::make_unique<Impl>(scene)) {
  Impl& m = *impl_;
  m.renderer->SetBackground(0.08, 0.08, 0.1);
  if (scene.labels() && scene.max_label() > 0) {
    m.surfaces = build_surfaces(scene.labels(), scene.label_table, options);
    for (const auto& s : m.surfaces) {
      vtkNew<vtkPolyDataMapper> mapper;
      mapper->SetInputData(s.mesh);
      mapper->ScalarVisibilityOff();
      auto actor = vtkSmartPointer<vtkActor>::New();
      actor->SetMapper(mapper);
      actor->GetProperty()->SetSpecular(0.2);
      actor->GetProperty()->SetSpecularPower(20);
      m.renderer->AddActor(actor);
      m.actors.push_back(actor);
    }
  }
  if (scene.display.volume_rendering || m.surfaces.empty()) {
    // Volume rendering of the index-space buffer placed in the patient by the volume's matrix
    // (no dependence on VTK's support for direction matrices in each mapper).
    vtkNew<vtkSmartVolumeMapper> mapper;
    mapper->SetInputData(scene.volume_index_space());
    mapper->SetRequestedRenderModeToGPU();
    m.volume = vtkSmartPointer<vtkVolume>::New();
    m.volume->SetMapper(mapper);
    m.volume->SetUserMatrix(scene.index_to_patient());
    m.renderer->AddVolume(m.volume);
  }
  m.title->SetInput("3D  anterior");
  m.title->GetTextProperty()->SetFontSize(12);
  m.title->GetTextProperty()->SetColor(0.9, 0.9, 0.9);
  m.title->GetPositionCoordinate()->SetCoordinateSystemToNormalizedViewport();
  m.title->GetTextProperty()->SetVerticalJustificationToTop();
  m.title->SetPosition(0.015, 0.985);
  m.renderer->AddViewProp(m.title);
  update();
  reset_camera();
}

SurfaceView::~SurfaceView() = default;

vtkRenderer* SurfaceView::renderer() const { return impl_->renderer; }
std::size_t SurfaceView::surface_count() const { return impl_->surfaces.size(); }

void SurfaceView::update() {
  Impl& m = *impl_;
  const DisplaySettings& d = m.scene.display;
  for (std::size_t i = 0; i < m.surfaces.size(); ++i) {
    const LabelStyle* style = m.scene.label_table.find(m.surfaces[i].label);
    const bool visible = d.labels_visible && (!style || style->visible);
    m.actors[i]->SetVisibility(visible);
    if (style) {
      m.actors[i]->GetProperty()->SetColor(style->color[0], style->color[1], style->color[2]);
      // Surfaces stay opaque unless a label is explicitly made see-through.
      m.actors[i]->GetProperty()->SetOpacity(std::clamp(style->opacity >= 0.5 ? 1.0 : style->opacity * 2, 0.0, 1.0));
    }
  }
  if (m.volume) {
    const double lo = d.window.level - d.window.window / 2, hi = d.window.level + d.window.window / 2;
    vtkNew<vtkColorTransferFunction> colour;
    colour->AddRGBPoint(lo, 0, 0, 0);
    colour->AddRGBPoint(hi, 1, 0.95, 0.9);
    vtkNew<vtkPiecewiseFunction> opacity;
    opacity->AddPoint(lo + 0.3 * (hi - lo), 0);
    opacity->AddPoint(hi, m.surfaces.empty() ? 0.6 : 0.15);
    vtkNew<vtkVolumeProperty> property;
    property->SetColor(colour);
    property->SetScalarOpacity(opacity);
    property->SetInterpolationTypeToLinear();
    property->ShadeOff();
    m.volume->SetProperty(property);
  }
}

void SurfaceView::reset_camera() {
  Impl& m = *impl_;
  const Vec3 c = m.scene.centre();
  vtkCamera* camera = m.renderer->GetActiveCamera();
  // From the anterior (-P), superior up: patient left appears on the right, as in coronal views.
  camera->SetFocalPoint(c[0], c[1], c[2]);
  camera->SetPosition(c[0], c[1] - 1000, c[2]);
  camera->SetViewUp(0, 0, 1);
  camera->ParallelProjectionOff();
  // Frame the whole volume, not only the surfaces, so pictures of different label maps align.
  double bounds[6];
  const auto size = m.scene.volume()->GetLargestPossibleRegion().GetSize();
  bounds[0] = bounds[2] = bounds[4] = 1e300;
  bounds[1] = bounds[3] = bounds[5] = -1e300;
  for (int corner = 0; corner < 8; ++corner) {
    itk::ContinuousIndex<double, 3> idx;
    for (unsigned d = 0; d < 3; ++d) idx[d] = (corner >> d & 1) ? double(size[d]) - 0.5 : -0.5;
    itk::Point<double, 3> p;
    m.scene.volume()->TransformContinuousIndexToPhysicalPoint(idx, p);
    for (int d = 0; d < 3; ++d) {
      bounds[2 * d] = std::min(bounds[2 * d], p[unsigned(d)]);
      bounds[2 * d + 1] = std::max(bounds[2 * d + 1], p[unsigned(d)]);
    }
  }
  m.renderer->ResetCamera(bounds);
}

void SurfaceView::rotate(double azimuth, double elevation) {
  vtkCamera* camera = impl_->renderer->GetActiveCamera();
  camera->Azimuth(azimuth);
  camera->Elevation(elevation);
  camera->OrthogonalizeViewUp();
  impl_->renderer->ResetCameraClippingRange();
}

void SurfaceView::zoom(double factor) {
  impl_->renderer->GetActiveCamera()->Zoom(factor);
  impl_->renderer->ResetCameraClippingRange();
}

}  // namespace sagitta::viewer

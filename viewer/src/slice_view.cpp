// One 2D view of a Scene: a patient-aligned plane through a point, the volume under window/level
// with the label and heatmap overlays composed on top, orientation letters, slice position, W/L, a
// scale bar, a label legend and an optional crosshair (the declarations and their contract:
// sagitta/viewer/slice_view.h).
#include "sagitta/viewer/slice_view.h"

#include <fmt/format.h>
#include <vtkActor.h>
#include <vtkActor2D.h>
#include <vtkCamera.h>
#include <vtkCellArray.h>
#include <vtkImageActor.h>
#include <vtkImageData.h>
#include <vtkImageMapper3D.h>
#include <vtkImageReslice.h>
#include <vtkLineSource.h>
#include <vtkMatrix4x4.h>
#include <vtkPointData.h>
#include <vtkPoints.h>
#include <vtkPolyData.h>
#include <vtkPolyDataMapper.h>
#include <vtkPolyDataMapper2D.h>
#include <vtkProperty.h>
#include <vtkProperty2D.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>
#include <vtkTextActor.h>
#include <vtkTextProperty.h>
#include <vtkUnsignedCharArray.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "slice_compositor.h"

namespace sagitta::viewer {

struct SliceView::Impl {
  const Scene& scene;
  SliceGrid grid;
  Vec3 focus{};
  int slice = 0;
  int composed_slice = -1;  // slice shown by the current picture
  bool crosshair = false;

  vtkNew<vtkRenderer> renderer;
  vtkNew<vtkImageReslice> volume_reslice, label_reslice, heat_reslice;
  vtkNew<vtkImageData> rgb;
  vtkNew<vtkImageActor> image_actor;
  vtkNew<vtkLineSource> line_h, line_v;
  vtkNew<vtkActor> cross_h, cross_v;
  std::array<vtkNew<vtkTextActor>, 4> letters;
  vtkNew<vtkTextActor> info, wl_text, scale_text;
  vtkNew<vtkPoints> scale_points;
  vtkNew<vtkPolyData> scale_poly;
  vtkNew<vtkActor2D> scale_actor;
  std::vector<vtkSmartPointer<vtkTextActor>> legend;
  std::string legend_key;  // what the legend shows; rebuilt only when it changes (FreeType is slow)

  Impl(const Scene& s, Orientation o) : scene(s), grid(SliceGrid::of(s.volume(), o)) {}

  void setup_reslice(vtkImageReslice* r, vtkImageData* input, bool nearest, double background) {
    r->SetInputData(input);
    r->SetOutputSpacing(grid.spacing[0], grid.spacing[1], grid.spacing[2]);
    r->SetOutputExtent(0, grid.size[0] - 1, 0, grid.size[1] - 1, 0, 0);
    r->SetOutputOrigin(grid.origin[0], grid.origin[1], 0);
    // 2D output: VTK forces the output's z origin to 0, so the slice position lives in the axes.
    r->SetOutputDimensionality(2);
    if (nearest)
      r->SetInterpolationModeToNearestNeighbor();
    else
      r->SetInterpolationModeToLinear();
    r->SetBackgroundLevel(background);
  }

  void reslice_at(vtkImageReslice* r) {
    // Output (right, up, normal) mm -> patient LPS (the plane through the slice) -> continuous
    // voxel index (the input is the index-space view of the buffer).
    vtkNew<vtkMatrix4x4> plane;
    plane->Identity();
    const std::array<Vec3, 3> axes{grid.axes.right, grid.axes.up, grid.axes.normal};
    const double position = grid.slice_position(slice);
    for (std::size_t row = 0; row < 3; ++row) {
      for (std::size_t c = 0; c < 3; ++c) plane->SetElement(int(row), int(c), axes[c][row]);
      plane->SetElement(int(row), 3, position * grid.axes.normal[row]);
    }
    vtkNew<vtkMatrix4x4> axes_matrix;
    vtkMatrix4x4::Multiply4x4(scene.patient_to_index(), plane, axes_matrix);
    r->SetResliceAxes(axes_matrix);
    r->Update();
  }

  static void style_text(vtkTextActor* t, int size, double r, double g, double b) {
    t->GetTextProperty()->SetFontFamilyToArial();
    t->GetTextProperty()->SetFontSize(size);
    t->GetTextProperty()->SetColor(r, g, b);
    t->GetTextProperty()->SetShadow(1);
    t->GetPositionCoordinate()->SetCoordinateSystemToNormalizedViewport();
  }

  std::array<int, 2> viewport_size() const {
    if (!renderer->GetRenderWindow()) return {1, 1};
    const int* s = renderer->GetSize();
    return {std::max(1, s[0]), std::max(1, s[1])};
  }
  std::array<int, 2> viewport_origin() const {
    if (!renderer->GetRenderWindow()) return {0, 0};
    const int* o = renderer->GetOrigin();
    return {o[0], o[1]};
  }
  double pixels_per_mm() const {
    return viewport_size()[1] / (2.0 * renderer->GetActiveCamera()->GetParallelScale());
  }

  void update_crosshair() {
    const Vec3 c = grid.plane_coordinates(focus);
    const double x0 = grid.origin[0] - grid.spacing[0], x1 = grid.origin[0] + grid.size[0] * grid.spacing[0];
    const double y0 = grid.origin[1] - grid.spacing[1], y1 = grid.origin[1] + grid.size[1] * grid.spacing[1];
    line_h->SetPoint1(x0, c[1], 1);
    line_h->SetPoint2(x1, c[1], 1);
    line_v->SetPoint1(c[0], y0, 1);
    line_v->SetPoint2(c[0], y1, 1);
    cross_h->SetVisibility(crosshair);
    cross_v->SetVisibility(crosshair);
  }

  void update_annotations() {
    const bool on = scene.display.annotations;
    const auto vp = viewport_size();
    const int font = std::clamp(vp[1] / 30, 9, 18);
    for (int i = 0; i < 4; ++i) {
      letters[static_cast<std::size_t>(i)]->SetVisibility(on);
      letters[static_cast<std::size_t>(i)]->GetTextProperty()->SetFontSize(font + 2);
    }
    info->SetVisibility(on);
    wl_text->SetVisibility(on);
    scale_actor->SetVisibility(on);
    scale_text->SetVisibility(on);
    for (auto& t : legend) t->SetVisibility(on);
    if (!on) return;

    // Slice position along the patient axis, named by the direction it points to.
    const double pos = grid.slice_position(slice);
    static const char* positive[] = {"S", "P", "L"};
    static const char* negative[] = {"I", "A", "R"};
    const int o = static_cast<int>(grid.orientation);
    const std::string name = to_string(grid.orientation);
    info->SetInput(fmt::format("{}{}  {} {:.1f} mm  slice {}/{}", char(std::toupper(name[0])), name.substr(1),
                               pos >= 0 ? positive[o] : negative[o], std::fabs(pos), slice, grid.size[2] - 1)
                       .c_str());
    info->GetTextProperty()->SetFontSize(font);
    const auto& wl = scene.display.window;
    wl_text->SetInput(fmt::format("W {:.0f}  L {:.0f}  ({})", wl.window, wl.level, wl.name).c_str());
    wl_text->GetTextProperty()->SetFontSize(font);

    // Scale bar: a round length near a quarter of the view's width.
    const double ppm = pixels_per_mm();
    const double target_mm = vp[0] / 4.0 / ppm;
    double length = 1;
    for (double c : {1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0})
      if (c <= target_mm) length = c;
    const double px = length * ppm;
    const double x1 = vp[0] - 12.0, x0 = x1 - px, y = 12.0, tick = 5.0;
    scale_points->SetPoint(0, x0, y + tick, 0);
    scale_points->SetPoint(1, x0, y, 0);
    scale_points->SetPoint(2, x1, y, 0);
    scale_points->SetPoint(3, x1, y + tick, 0);
    scale_points->Modified();
    scale_text->SetInput(fmt::format("{:g} mm", length).c_str());
    scale_text->GetTextProperty()->SetFontSize(font);
    scale_text->GetPositionCoordinate()->SetCoordinateSystemToViewport();
    scale_text->SetPosition((x0 + x1) / 2, y + tick + 2);

    // Legend: visible labels present in the map, top right.
    std::vector<std::pair<int, const LabelStyle*>> entries;
    std::string key = std::to_string(font);
    if (scene.labels() && scene.display.labels_visible) {
      for (const auto& [value, style] : scene.label_table.styles()) {
        if (value <= 0 || value > scene.max_label() || scene.label_counts()[static_cast<std::size_t>(value)] == 0 ||
            !style.visible)
          continue;
        if (entries.size() == 12) break;
        entries.emplace_back(value, &style);
        key += fmt::format("|{}:{}:{}:{}:{}", value, style.name, style.color[0], style.color[1], style.color[2]);
      }
    }
    if (key == legend_key) return;
    legend_key = key;
    for (auto& t : legend) renderer->RemoveViewProp(t);
    legend.clear();
    int row = 0;
    for (const auto& [value, style] : entries) {
      auto t = vtkSmartPointer<vtkTextActor>::New();
      style_text(t, font, style->color[0], style->color[1], style->color[2]);
      t->GetTextProperty()->SetJustificationToRight();
      t->GetTextProperty()->SetVerticalJustificationToTop();
      t->SetInput(fmt::format("{} {}", value, style->name).c_str());
      t->SetPosition(0.985, 0.93 - 0.045 * row);
      renderer->AddViewProp(t);
      legend.push_back(t);
      ++row;
    }
  }
};

SliceView::SliceView(const Scene& scene, Orientation orientation) : impl_(std::make_unique<Impl>(scene, orientation)) {
  Impl& m = *impl_;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  m.setup_reslice(m.volume_reslice, scene.volume_index_space(), false, nan);
  if (scene.labels()) m.setup_reslice(m.label_reslice, scene.labels_index_space(), true, 0);
  if (scene.heatmap()) m.setup_reslice(m.heat_reslice, scene.heatmap_index_space(), false, 0);

  m.rgb->SetExtent(0, m.grid.size[0] - 1, 0, m.grid.size[1] - 1, 0, 0);
  m.rgb->SetOrigin(m.grid.origin[0], m.grid.origin[1], 0);
  m.rgb->SetSpacing(m.grid.spacing[0], m.grid.spacing[1], 1);
  m.rgb->AllocateScalars(VTK_UNSIGNED_CHAR, 3);
  m.image_actor->GetMapper()->SetInputData(m.rgb);
  m.image_actor->InterpolateOff();  // one screen pixel shows one voxel's value, never a blend
  m.renderer->AddViewProp(m.image_actor);
  m.renderer->SetBackground(0, 0, 0);

  for (const auto& [line, actor] : {std::make_pair(m.line_h.GetPointer(), m.cross_h.GetPointer()),
                                     std::make_pair(m.line_v.GetPointer(), m.cross_v.GetPointer())}) {
    vtkNew<vtkPolyDataMapper> mapper;
    mapper->SetInputConnection(line->GetOutputPort());
    actor->SetMapper(mapper);
    actor->GetProperty()->SetColor(kCrosshairColor[0], kCrosshairColor[1], kCrosshairColor[2]);
    actor->GetProperty()->SetLineWidth(1);
    actor->GetProperty()->LightingOff();
    actor->PickableOff();
    m.renderer->AddViewProp(actor);
  }

  const auto letters = m.grid.axes.letters;
  const double pos[4][2] = {{0.015, 0.5}, {0.985, 0.5}, {0.5, 0.985}, {0.5, 0.015}};
  for (int i = 0; i < 4; ++i) {
    auto& t = m.letters[static_cast<std::size_t>(i)];
    Impl::style_text(t, 14, 1.0, 0.85, 0.35);
    t->SetInput(std::string(1, letters[static_cast<std::size_t>(i)]).c_str());
    t->GetTextProperty()->SetJustification(i == 0 ? VTK_TEXT_LEFT : i == 1 ? VTK_TEXT_RIGHT : VTK_TEXT_CENTERED);
    t->GetTextProperty()->SetVerticalJustification(i == 2 ? VTK_TEXT_TOP : i == 3 ? VTK_TEXT_BOTTOM : VTK_TEXT_CENTERED);
    t->SetPosition(pos[i][0], pos[i][1]);
    t->GetTextProperty()->BoldOn();
    m.renderer->AddViewProp(t);
  }
  Impl::style_text(m.info, 12, 0.9, 0.9, 0.9);
  m.info->GetTextProperty()->SetVerticalJustificationToTop();
  m.info->SetPosition(0.015, 0.93);
  m.renderer->AddViewProp(m.info);
  Impl::style_text(m.wl_text, 12, 0.9, 0.9, 0.9);
  m.wl_text->SetPosition(0.015, 0.015);
  m.renderer->AddViewProp(m.wl_text);
  Impl::style_text(m.scale_text, 12, 0.9, 0.9, 0.9);
  m.scale_text->GetTextProperty()->SetJustificationToCentered();
  m.renderer->AddViewProp(m.scale_text);

  m.scale_points->SetNumberOfPoints(4);
  vtkNew<vtkCellArray> lines;
  const vtkIdType ids[4] = {0, 1, 2, 3};
  lines->InsertNextCell(4, ids);
  m.scale_poly->SetPoints(m.scale_points);
  m.scale_poly->SetLines(lines);
  vtkNew<vtkPolyDataMapper2D> scale_mapper;
  scale_mapper->SetInputData(m.scale_poly);
  m.scale_actor->SetMapper(scale_mapper);
  m.scale_actor->GetProperty()->SetColor(0.9, 0.9, 0.9);
  m.scale_actor->GetProperty()->SetLineWidth(2);
  m.renderer->AddViewProp(m.scale_actor);

  vtkCamera* camera = m.renderer->GetActiveCamera();
  camera->ParallelProjectionOn();
  set_focus(scene.focus_point());
  reset_camera();
}

SliceView::~SliceView() = default;

vtkRenderer* SliceView::renderer() const { return impl_->renderer; }
const SliceGrid& SliceView::grid() const { return impl_->grid; }

void SliceView::set_focus(const Vec3& lps) {
  impl_->focus = lps;
  impl_->slice = impl_->grid.slice_of(lps);
}

Vec3 SliceView::focus() const { return impl_->focus; }

void SliceView::set_slice(int k) {
  Impl& m = *impl_;
  m.slice = std::clamp(k, 0, m.grid.size[2] - 1);
  // The focus moves with the slice so linked views follow.
  Vec3 c = m.grid.plane_coordinates(m.focus);
  c[2] = m.grid.slice_position(m.slice);
  for (int d = 0; d < 3; ++d)
    m.focus[static_cast<std::size_t>(d)] = c[0] * m.grid.axes.right[static_cast<std::size_t>(d)] +
                                           c[1] * m.grid.axes.up[static_cast<std::size_t>(d)] +
                                           c[2] * m.grid.axes.normal[static_cast<std::size_t>(d)];
}

int SliceView::slice() const { return impl_->slice; }

void SliceView::show_crosshair(bool on) { impl_->crosshair = on; }

void SliceView::update(bool force) {
  Impl& m = *impl_;
  if (force || m.composed_slice != m.slice) compose();
  m.update_crosshair();
  m.update_annotations();
}

void SliceView::compose() {
  Impl& m = *impl_;
  const Scene& s = m.scene;
  m.composed_slice = m.slice;
  SliceLayers layers;
  layers.width = m.grid.size[0];
  layers.height = m.grid.size[1];
  m.reslice_at(m.volume_reslice);
  layers.volume = static_cast<const float*>(m.volume_reslice->GetOutput()->GetScalarPointer());
  if (s.labels() && s.display.labels_visible) {
    m.reslice_at(m.label_reslice);
    layers.labels = static_cast<const std::uint16_t*>(m.label_reslice->GetOutput()->GetScalarPointer());
  }
  if (s.heatmap() && s.display.heatmap.visible) {
    m.reslice_at(m.heat_reslice);
    layers.heatmap = static_cast<const float*>(m.heat_reslice->GetOutput()->GetScalarPointer());
  }
  compose_slice(layers, s, static_cast<std::uint8_t*>(m.rgb->GetScalarPointer()));
  m.rgb->Modified();
}

void SliceView::reset_camera() {
  Impl& m = *impl_;
  const double w = m.grid.size[0] * m.grid.spacing[0], h = m.grid.size[1] * m.grid.spacing[1];
  const double cx = m.grid.origin[0] + (m.grid.size[0] - 1) * m.grid.spacing[0] / 2;
  const double cy = m.grid.origin[1] + (m.grid.size[1] - 1) * m.grid.spacing[1] / 2;
  const auto vp = m.viewport_size();
  const double aspect = double(vp[0]) / double(vp[1]);
  vtkCamera* camera = m.renderer->GetActiveCamera();
  camera->SetFocalPoint(cx, cy, 0);
  camera->SetPosition(cx, cy, 1000);
  camera->SetViewUp(0, 1, 0);
  camera->SetParallelScale(std::max(h / 2, w / 2 / aspect));
  camera->SetClippingRange(1, 2000);
}

void SliceView::zoom(double factor) {
  vtkCamera* camera = impl_->renderer->GetActiveCamera();
  camera->SetParallelScale(camera->GetParallelScale() / factor);
}

void SliceView::pan(double dx, double dy) {
  vtkCamera* camera = impl_->renderer->GetActiveCamera();
  const double ppm = impl_->pixels_per_mm();
  double f[3], p[3];
  camera->GetFocalPoint(f);
  camera->GetPosition(p);
  f[0] -= dx / ppm;
  f[1] -= dy / ppm;
  p[0] -= dx / ppm;
  p[1] -= dy / ppm;
  camera->SetFocalPoint(f);
  camera->SetPosition(p);
}

double SliceView::mm_per_pixel() const { return 1.0 / impl_->pixels_per_mm(); }

Vec3 SliceView::display_to_patient(double x, double y) const {
  const Impl& m = *impl_;
  const auto vp = m.viewport_size();
  const auto o = m.viewport_origin();
  double f[3];
  m.renderer->GetActiveCamera()->GetFocalPoint(f);
  const double ppm = m.pixels_per_mm();
  // Pixel centres: display pixel x covers [x, x+1).
  const double r = f[0] + (x + 0.5 - o[0] - vp[0] / 2.0) / ppm;
  const double u = f[1] + (y + 0.5 - o[1] - vp[1] / 2.0) / ppm;
  const double n = m.grid.slice_position(m.slice);
  Vec3 p{};
  for (std::size_t d = 0; d < 3; ++d) p[d] = r * m.grid.axes.right[d] + u * m.grid.axes.up[d] + n * m.grid.axes.normal[d];
  return p;
}

std::array<double, 2> SliceView::patient_to_display(const Vec3& lps) const {
  const Impl& m = *impl_;
  const auto vp = m.viewport_size();
  const auto o = m.viewport_origin();
  double f[3];
  m.renderer->GetActiveCamera()->GetFocalPoint(f);
  const double ppm = m.pixels_per_mm();
  const Vec3 c = m.grid.plane_coordinates(lps);
  return {o[0] + vp[0] / 2.0 + (c[0] - f[0]) * ppm - 0.5, o[1] + vp[1] / 2.0 + (c[1] - f[1]) * ppm - 0.5};
}

}  // namespace sagitta::viewer

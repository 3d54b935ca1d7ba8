// The interactive viewer: axial, coronal, sagittal and 3D views in one window, linked by a
// crosshair (the declarations and their contract: sagitta/viewer/interactive_viewer.h).
#include "sagitta/viewer/interactive_viewer.h"

#include <vtkCallbackCommand.h>
#include <vtkCamera.h>
#include <vtkImageData.h>
#include <vtkInteractorStyle.h>
#include <vtkObjectFactory.h>
#include <vtkRenderWindow.h>
#include <vtkRenderWindowInteractor.h>
#include <vtkRenderer.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <string>

#include "sagitta/viewer/display.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/offscreen_render.h"
#include "sagitta/viewer/surface_view.h"

namespace sagitta::viewer {

namespace {
enum class Drag { None, Crosshair, Rotate, Pan, WindowLevel };
}

struct InteractiveViewer::Impl {
  Scene& scene;
  ViewerOptions options;
  vtkNew<vtkRenderWindow> window;
  vtkNew<vtkRenderWindowInteractor> interactor;
  std::array<std::unique_ptr<SliceView>, 3> views;
  std::unique_ptr<SurfaceView> surface;
  Vec3 cross{};
  Drag drag = Drag::None;
  vtkRenderer* drag_renderer = nullptr;
  int last_x = 0, last_y = 0;

  Impl(Scene& s, const ViewerOptions& o) : scene(s), options(o) {}

  SliceView* slice_view_of(vtkRenderer* r) {
    for (auto& v : views)
      if (v->renderer() == r) return v.get();
    return nullptr;
  }
  vtkRenderer* renderer_at(int x, int y) { return interactor->FindPokedRenderer(x, y); }

  void set_cross(const Vec3& p) {
    cross = p;
    for (auto& v : views) v->set_focus(p);
  }

  void refresh(bool pictures) {
    for (auto& v : views) v->update(pictures);
    if (surface) surface->update();
    window->Render();
  }

  void scroll(SliceView* v, int n) {
    v->set_slice(v->slice() + n);
    set_cross(v->focus());
    refresh(false);
  }

  void apply_window(const WindowLevel& wl) {
    scene.display.window = wl;
    refresh(true);
  }

  void key(const std::string& sym, char code) {
    SliceView* v = slice_view_of(renderer_at(interactor->GetEventPosition()[0], interactor->GetEventPosition()[1]));
    if (!v) v = views[0].get();
    if (sym == "Up" || sym == "Prior") return scroll(v, sym == "Up" ? 1 : 10);
    if (sym == "Down" || sym == "Next") return scroll(v, sym == "Down" ? -1 : -10);
    switch (code) {
      case '1': case '2': case '3': case '4':
        return apply_window(ct_presets()[std::size_t(code - '1')]);
      case '0': return apply_window(auto_window(scene.volume()));
      case 'l': scene.display.labels_visible = !scene.display.labels_visible; return refresh(true);
      case 'h': scene.display.heatmap.visible = !scene.display.heatmap.visible; return refresh(true);
      case 'o': scene.display.label_outline = !scene.display.label_outline; return refresh(true);
      case '[':
      case ']': {
        const double step = code == ']' ? 0.1 : -0.1;
        scene.display.label_opacity = std::clamp(scene.display.label_opacity + step, 0.0, 1.0);
        scene.display.heatmap.opacity = std::clamp(scene.display.heatmap.opacity + step, 0.0, 1.0);
        return refresh(true);
      }
      case 'r':
        for (auto& view : views) view->reset_camera();
        if (surface) surface->reset_camera();
        set_cross(scene.focus_point());
        return refresh(true);
      case 's': {
        const auto path = save();
        std::cout << "screenshot: " << path.string() << std::endl;
        return;
      }
      case 'q': case 'e': interactor->TerminateApp(); return;
      default: return;
    }
  }

  vtkSmartPointer<vtkImageData> grab() {
    window->Render();
    return window_picture(window);
  }

  std::filesystem::path save() {
    namespace fs = std::filesystem;
    fs::create_directories(options.screenshot_folder);
    for (int i = 1;; ++i) {
      const fs::path p = options.screenshot_folder / ("sagitta-screenshot-" + std::to_string(i) + ".png");
      if (fs::exists(p)) continue;
      write_png(grab(), p);
      return p;
    }
  }
};

namespace {

// Routes the interactor's events to the viewer: 2D gestures in slice views, rotation in 3D.
class ViewerStyle : public vtkInteractorStyle {
public:
  static ViewerStyle* New();
  vtkTypeMacro(ViewerStyle, vtkInteractorStyle)
  InteractiveViewer::Impl* viewer = nullptr;

  void OnLeftButtonDown() override { press(Drag::Crosshair); }
  void OnMiddleButtonDown() override { press(Drag::Pan); }
  void OnRightButtonDown() override { press(Drag::WindowLevel); }
  void OnLeftButtonUp() override { release(); }
  void OnMiddleButtonUp() override { release(); }
  void OnRightButtonUp() override { release(); }
  void OnMouseMove() override {
    auto& v = *viewer;
    if (v.drag == Drag::None) return;
    const int* p = Interactor->GetEventPosition();
    const int dx = p[0] - v.last_x, dy = p[1] - v.last_y;
    v.last_x = p[0];
    v.last_y = p[1];
    SliceView* view = v.slice_view_of(v.drag_renderer);
    switch (v.drag) {
      case Drag::Crosshair:
        if (view) {
          v.set_cross(view->display_to_patient(p[0], p[1]));
          v.refresh(false);
        }
        break;
      case Drag::Rotate:
        if (v.surface) {
          v.surface->rotate(-dx * 0.5, -dy * 0.5);
          v.window->Render();
        }
        break;
      case Drag::Pan:
        if (view) {
          view->pan(dx, dy);
          v.refresh(false);
        }
        break;
      case Drag::WindowLevel: {
        // Proportional to the current window, so the gesture feels the same for CT and MR.
        WindowLevel wl = v.scene.display.window;
        const double scale = std::max(wl.window, 1.0) / 200.0;
        wl.window = std::max(1.0, wl.window + dx * scale);
        wl.level += dy * scale;
        wl.name = "custom";
        v.apply_window(wl);
        break;
      }
      case Drag::None: break;
    }
  }
  void OnMouseWheelForward() override { wheel(+1); }
  void OnMouseWheelBackward() override { wheel(-1); }
  void OnChar() override {
    viewer->key(Interactor->GetKeySym() ? Interactor->GetKeySym() : "", Interactor->GetKeyCode());
  }
  void OnKeyPress() override {}  // handled in OnChar (arrows arrive there with their key symbol)

private:
  void press(Drag kind) {
    auto& v = *viewer;
    const int* p = Interactor->GetEventPosition();
    v.drag_renderer = v.renderer_at(p[0], p[1]);
    v.last_x = p[0];
    v.last_y = p[1];
    SliceView* view = v.slice_view_of(v.drag_renderer);
    if (!view) {
      v.drag = kind == Drag::Crosshair ? Drag::Rotate : Drag::None;
      return;
    }
    v.drag = kind;
    if (kind == Drag::Crosshair) OnMouseMove();
  }
  void release() { viewer->drag = Drag::None; }
  void wheel(int direction) {
    auto& v = *viewer;
    const int* p = Interactor->GetEventPosition();
    vtkRenderer* r = v.renderer_at(p[0], p[1]);
    SliceView* view = v.slice_view_of(r);
    if (Interactor->GetControlKey()) {
      if (view) {
        view->zoom(direction > 0 ? 1.1 : 1 / 1.1);
        v.refresh(false);
      } else if (v.surface) {
        v.surface->zoom(direction > 0 ? 1.1 : 1 / 1.1);
        v.window->Render();
      }
      return;
    }
    if (view) v.scroll(view, direction);
  }
};
vtkStandardNewMacro(ViewerStyle);

}  // namespace

InteractiveViewer::InteractiveViewer(Scene& scene, const ViewerOptions& options)
    : impl_(std::make_unique<Impl>(scene, options)) {
  require_display("use `sagitta render` to write pictures without a window");
  Impl& m = *impl_;
  m.window->SetDisplayId(shared_display());
  m.window->SetSize(options.width, options.height);
  m.window->SetMultiSamples(0);
  m.window->SetWindowName("Sagitta");
  if (options.offscreen) m.window->SetOffScreenRendering(1);
  const Orientation orientations[3] = {Orientation::Axial, Orientation::Coronal, Orientation::Sagittal};
  const double viewports[4][4] = {{0, 0.5, 0.5, 1}, {0.5, 0.5, 1, 1}, {0, 0, 0.5, 0.5}, {0.5, 0, 1, 0.5}};
  for (int i = 0; i < 3; ++i) {
    m.views[std::size_t(i)] = std::make_unique<SliceView>(scene, orientations[i]);
    m.views[std::size_t(i)]->show_crosshair(true);
    m.views[std::size_t(i)]->renderer()->SetViewport(viewports[i]);
    m.window->AddRenderer(m.views[std::size_t(i)]->renderer());
  }
  if (options.surfaces) {
    m.surface = std::make_unique<SurfaceView>(scene, options.surface_options);
    m.surface->renderer()->SetViewport(viewports[3]);
    m.window->AddRenderer(m.surface->renderer());
  }
  vtkNew<ViewerStyle> style;
  style->viewer = impl_.get();
  m.interactor->SetRenderWindow(m.window);
  m.interactor->SetInteractorStyle(style);
  m.interactor->Initialize();
  for (auto& v : m.views) v->reset_camera();
  if (m.surface) m.surface->reset_camera();
  m.set_cross(scene.focus_point());
  m.refresh(true);
}

InteractiveViewer::~InteractiveViewer() = default;

void InteractiveViewer::run() {
  impl_->window->Render();
  impl_->interactor->Start();
}

void InteractiveViewer::set_crosshair(const Vec3& lps) {
  impl_->set_cross(lps);
  impl_->refresh(false);
}
Vec3 InteractiveViewer::crosshair() const { return impl_->cross; }
void InteractiveViewer::scroll(Orientation o, int n) { impl_->scroll(impl_->views[std::size_t(o)].get(), n); }
SliceView& InteractiveViewer::view(Orientation o) { return *impl_->views[std::size_t(o)]; }
void InteractiveViewer::render() { impl_->refresh(true); }
vtkSmartPointer<vtkImageData> InteractiveViewer::screenshot() { return impl_->grab(); }
std::filesystem::path InteractiveViewer::save_screenshot() { return impl_->save(); }
vtkRenderWindow* InteractiveViewer::window() const { return impl_->window; }
vtkRenderWindowInteractor* InteractiveViewer::interactor() const { return impl_->interactor; }

}  // namespace sagitta::viewer

#pragma once
// The interactive viewer: axial, coronal, sagittal and 3D views in one window, linked by a
// crosshair. Mouse: left click/drag moves the crosshair (3D view: rotates), wheel scrolls slices,
// Ctrl+wheel zooms, middle drag pans, right drag changes window (horizontal) and level
// (vertical). Keys: 1-4 CT presets (brain, soft tissue, lung, bone), 0 automatic window,
// l labels on/off, h heatmap on/off, o fill/outline, [ and ] overlay opacity, Up/Down or
// PageUp/PageDown slices, r reset, s screenshot, q quit.
#include <filesystem>
#include <memory>

#include "sagitta/viewer/scene.h"
#include "sagitta/viewer/slice_view.h"
#include "sagitta/viewer/surfaces.h"

class vtkRenderWindow;
class vtkRenderWindowInteractor;

namespace sagitta::viewer {

struct ViewerOptions {
  int width = 1024, height = 1024;
  bool offscreen = false;  // render into an offscreen window (tests, benchmarks)
  bool surfaces = true;    // build the 3D view's surfaces (costly for big label maps)
  SurfaceOptions surface_options;
  std::filesystem::path screenshot_folder = ".";  // where the 's' key writes PNGs
};

class InteractiveViewer {
public:
  // Needs an X display (see require_display); `scene` must outlive the viewer.
  InteractiveViewer(Scene& scene, const ViewerOptions& options = {});
  ~InteractiveViewer();
  InteractiveViewer(const InteractiveViewer&) = delete;
  InteractiveViewer& operator=(const InteractiveViewer&) = delete;

  // Opens the window and runs the event loop until the window closes or 'q' is pressed.
  void run();

  // Programmatic control (also what the mouse and keys do).
  void set_crosshair(const Vec3& lps);
  Vec3 crosshair() const;
  void scroll(Orientation view, int slices);
  SliceView& view(Orientation o);
  void render();
  // The window's current picture (RGB) and the PNG written by the screenshot key.
  vtkSmartPointer<vtkImageData> screenshot();
  std::filesystem::path save_screenshot();

  vtkRenderWindow* window() const;
  vtkRenderWindowInteractor* interactor() const;  // for driving with events in tests

  struct Impl;  // opaque; public so the interactor style can reach it

private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace sagitta::viewer

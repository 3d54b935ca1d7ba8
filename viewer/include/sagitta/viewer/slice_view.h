#pragma once
// One 2D view of a Scene: a patient-aligned plane through a point, the volume under window/level
// with the label and heatmap overlays composed on top, orientation letters, slice position, W/L,
// a scale bar, a label legend and an optional crosshair. The view lives in one vtkRenderer whose
// world coordinates are the plane's (right, up) coordinates in mm.
#include <vtkNew.h>
#include <vtkSmartPointer.h>

#include <array>
#include <memory>

#include "sagitta/viewer/scene.h"
#include "sagitta/viewer/slice_geometry.h"

class vtkRenderer;

namespace sagitta::viewer {

// Crosshair colour (RGB 0..1), drawn in every slice view when shown.
constexpr std::array<double, 3> kCrosshairColor{1.0, 0.85, 0.0};

class SliceView {
public:
  SliceView(const Scene& scene, Orientation orientation);
  ~SliceView();
  SliceView(const SliceView&) = delete;
  SliceView& operator=(const SliceView&) = delete;

  vtkRenderer* renderer() const;
  const SliceGrid& grid() const;
  Orientation orientation() const { return grid().orientation; }

  // Moves to the slice through `lps` (nearest slice of the grid) and remembers the point for the
  // crosshair.
  void set_focus(const Vec3& lps);
  Vec3 focus() const;
  void set_slice(int k);  // clamped to the grid
  int slice() const;

  void show_crosshair(bool on);
  // Re-reads the scene's display settings, reslices and recomposes; call before rendering.
  // With `force` false the picture is only recomposed when the slice changed since the last
  // update (crosshair and annotations are always refreshed): scrolling one linked view then costs
  // one reslice, not three.
  void update(bool force = true);

  // Fits the plane's extent into the viewport (call after the viewport has its final size).
  void reset_camera();
  void zoom(double factor);                   // >1 magnifies, about the viewport centre
  void pan(double dx_pixels, double dy_pixels);  // moves the picture by display pixels

  // Display pixel (renderer's window coordinates, origin bottom-left) <-> patient point on the
  // current slice.
  Vec3 display_to_patient(double x, double y) const;
  std::array<double, 2> patient_to_display(const Vec3& lps) const;
  // Millimetres per display pixel at the current zoom.
  double mm_per_pixel() const;

private:
  void compose();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sagitta::viewer

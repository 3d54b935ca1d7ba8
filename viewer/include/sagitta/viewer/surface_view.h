#pragma once
// The 3D view of a Scene: smoothed label surfaces in patient coordinates (and optionally the
// volume rendered behind them), seen from the anterior with superior up and patient left on the
// right, like the coronal view.
#include <memory>

#include "sagitta/viewer/scene.h"
#include "sagitta/viewer/surfaces.h"

class vtkRenderer;

namespace sagitta::viewer {

class SurfaceView {
public:
  // Builds the surfaces once (they are the costly part); `options` as for meshes.
  explicit SurfaceView(const Scene& scene, const SurfaceOptions& options = {});
  ~SurfaceView();
  SurfaceView(const SurfaceView&) = delete;
  SurfaceView& operator=(const SurfaceView&) = delete;

  vtkRenderer* renderer() const;
  // Applies visibility, colour and opacity from the scene's label table and display settings.
  void update();
  void reset_camera();
  void rotate(double azimuth_degrees, double elevation_degrees);
  void zoom(double factor);
  std::size_t surface_count() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sagitta::viewer

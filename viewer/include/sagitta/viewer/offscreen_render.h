#pragma once
// Offscreen pictures for reports: one view, a 2x2 grid (axial, coronal, sagittal, 3D) or a
// montage of axial slices, rendered in an offscreen X window (Xvfb works) into a PNG. Renders are
// deterministic: no multisampling, fixed sizes, fixed fonts.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <vtkImageData.h>
#include <vtkRenderWindow.h>
#include <vtkSmartPointer.h>

#include "sagitta/viewer/scene.h"
#include "sagitta/viewer/slice_geometry.h"
#include "sagitta/viewer/surfaces.h"

namespace sagitta::viewer {

enum class Layout { Axial, Coronal, Sagittal, ThreeD, Grid, Montage };
Layout parse_layout(const std::string& name);  // axial|coronal|sagittal|3d|grid|montage

struct RenderRequest {
  Layout layout = Layout::Axial;
  std::optional<int> slice;     // slice index of the single view; nullopt: through the focus
  std::optional<Vec3> focus;    // point the views pass through; nullopt: Scene::focus_point()
  int width = 512, height = 512;  // of the whole picture
  int montage_count = 9;        // montage: slices, evenly spaced over the volume (or the labels)
  SurfaceOptions surfaces;      // 3D and grid
  double azimuth = 0, elevation = 0;  // 3D and grid: degrees the camera turns after framing from the anterior
};

// Renders into an RGB image (row 0 at the bottom, as VTK stores images).
vtkSmartPointer<vtkImageData> render_image(const Scene& scene, const RenderRequest& request);

// The current picture of a rendered window (back buffer, RGB), a copy that outlives the window.
vtkSmartPointer<vtkImageData> window_picture(vtkRenderWindow* window);
// Renders and writes a PNG atomically.
void render_png(const Scene& scene, const RenderRequest& request, const std::filesystem::path& png);

// Atomic PNG writing of an RGB(A) image.
void write_png(vtkImageData* image, const std::filesystem::path& png);
// The PNG file's bytes of an RGB(A) image, in memory (for pages that inline their pictures).
std::string png_bytes(vtkImageData* image);

}  // namespace sagitta::viewer

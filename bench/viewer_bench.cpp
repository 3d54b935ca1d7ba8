// Viewer benchmarks, each against a peer measured in the same run (printed, never asserted):
//   scroll:   frames per second while scrolling a 512x512 slice view with label + heatmap
//             overlays (reslice x3, compose, render, swap) vs. VTK's bare grey-only reslice ->
//             window/level -> image actor pipeline in the same window size; and the four-view
//             interactive viewer (512x512 per view) scrolling its axial view.
//   surfaces: building smoothed surfaces for a 512x512x300 label map with 10 labels vs. one bare
//             vtkDiscreteFlyingEdges3D pass over the whole map with 10 contour values.
// Run under Xvfb:  xvfb-run -a build/bench/viewer_bench [scroll|surfaces]
#include <vtkCamera.h>
#include <vtkDiscreteFlyingEdges3D.h>
#include <vtkImageActor.h>
#include <vtkImageData.h>
#include <vtkImageMapToWindowLevelColors.h>
#include <vtkImageMapper3D.h>
#include <vtkImageReslice.h>
#include <vtkNew.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "sagitta/core/image.h"
#include "sagitta/viewer/display.h"
#include "sagitta/viewer/interactive_viewer.h"
#include "sagitta/viewer/itk_to_vtk.h"
#include "sagitta/viewer/scene.h"
#include "sagitta/viewer/slice_view.h"
#include "sagitta/viewer/surfaces.h"

namespace sv = sagitta::viewer;
using Clock = std::chrono::steady_clock;

namespace {

double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

template <typename TImage>
typename TImage::Pointer make(unsigned nx, unsigned ny, unsigned nz) {
  auto image = TImage::New();
  image->SetRegions(typename TImage::RegionType({{0, 0, 0}}, {{nx, ny, nz}}));
  typename TImage::SpacingType sp;
  sp[0] = sp[1] = 0.8;
  sp[2] = 1.0;
  image->SetSpacing(sp);
  sagitta::allocate_huge(image.GetPointer());
  image->FillBuffer(0);
  return image;
}

// Ten ellipsoids spread over the volume, painted through their bounding boxes.
template <typename TImage, typename F>
void paint_blobs(TImage* image, F value) {
  const auto size = image->GetLargestPossibleRegion().GetSize();
  for (int b = 0; b < 10; ++b) {
    const double cx = size[0] * (0.2 + 0.6 * ((b * 37) % 10) / 9.0), cy = size[1] * (0.2 + 0.6 * ((b * 53) % 10) / 9.0);
    const double cz = size[2] * (0.25 + 0.5 * b / 9.0);
    const double rx = 20 + 4 * b, ry = 25 + 3 * b, rz = 15 + 2 * b;
    for (long z = std::max(0L, long(cz - rz)); z < std::min(long(size[2]), long(cz + rz) + 1); ++z)
      for (long y = std::max(0L, long(cy - ry)); y < std::min(long(size[1]), long(cy + ry) + 1); ++y)
        for (long x = std::max(0L, long(cx - rx)); x < std::min(long(size[0]), long(cx + rx) + 1); ++x) {
          const double d = std::pow((x - cx) / rx, 2) + std::pow((y - cy) / ry, 2) + std::pow((z - cz) / rz, 2);
          if (d <= 1) image->GetBufferPointer()[(std::size_t(z) * size[1] + std::size_t(y)) * size[0] + std::size_t(x)] = value(b, d);
        }
  }
}

void scroll_bench() {
  const unsigned n = 512, depth = 160;
  auto volume = make<sv::Image>(n, n, depth);
  {
    float* p = volume->GetBufferPointer();
    for (std::size_t i = 0; i < std::size_t(n) * n * depth; ++i) p[i] = float((i * 2654435761u) % 400) - 100;  // texture
  }
  auto labels = make<sv::LabelImage>(n, n, depth);
  paint_blobs(labels.GetPointer(), [](int b, double) { return std::uint16_t(b + 1); });
  auto heat = make<sv::Image>(n, n, depth);
  paint_blobs(heat.GetPointer(), [](int, double d) { return float(1 - d); });
  sv::Scene scene(volume, labels, heat, "CT");
  const int frames = 150;

  // Peer: VTK's bare pipeline, grey only.
  double peer_fps = 0;
  {
    vtkNew<vtkRenderWindow> window;
    window->SetDisplayId(sv::shared_display());
    window->SetOffScreenRendering(1);
    window->SetSize(int(n), int(n));
    vtkNew<vtkRenderer> renderer;
    window->AddRenderer(renderer);
    auto vtk = sv::to_vtk_index_space(volume.GetPointer());
    vtkNew<vtkImageReslice> reslice;
    reslice->SetInputData(vtk);
    reslice->SetOutputDimensionality(2);
    reslice->SetInterpolationModeToLinear();
    vtkNew<vtkImageMapToWindowLevelColors> wl;
    wl->SetInputConnection(reslice->GetOutputPort());
    wl->SetWindow(400);
    wl->SetLevel(40);
    vtkNew<vtkImageActor> actor;
    actor->GetMapper()->SetInputConnection(wl->GetOutputPort());
    renderer->AddViewProp(actor);
    reslice->SetResliceAxesOrigin(0, 0, 0);
    window->Render();
    renderer->ResetCamera();
    const auto t0 = Clock::now();
    for (int f = 0; f < frames; ++f) {
      reslice->SetResliceAxesOrigin(0, 0, f % depth);
      window->Render();
    }
    peer_fps = frames / since(t0);
  }

  double single_fps = 0, compose_ms = 0, bare_view_fps = 0;
  for (bool annotations : {true, false}) {
    scene.display.annotations = annotations;
    vtkNew<vtkRenderWindow> window;
    window->SetDisplayId(sv::shared_display());
    window->SetOffScreenRendering(1);
    window->SetSize(int(n), int(n));
    sv::SliceView view(scene, sv::Orientation::Axial);
    window->AddRenderer(view.renderer());
    view.reset_camera();
    view.set_slice(0);
    view.update();
    window->Render();
    double compose = 0;
    const auto t0 = Clock::now();
    for (int f = 0; f < frames; ++f) {
      const auto t1 = Clock::now();
      view.set_slice(f % depth);
      view.update(false);
      compose += since(t1);
      window->Render();
    }
    (annotations ? single_fps : bare_view_fps) = frames / since(t0);
    if (annotations) compose_ms = 1000 * compose / frames;
  }

  scene.display.annotations = true;
  double four_fps = 0;
  {
    sv::ViewerOptions o;
    o.width = o.height = int(2 * n);
    o.offscreen = true;
    o.surfaces = false;
    sv::InteractiveViewer viewer(scene, o);
    const auto t0 = Clock::now();
    for (int f = 0; f < frames; ++f) viewer.scroll(sv::Orientation::Axial, f < frames / 2 ? 1 : -1);
    four_fps = frames / since(t0);
  }
  std::printf("scroll 512x512 axial, labels (10) + heatmap overlays, %d frames, offscreen under X:\n", frames);
  std::printf("  sagitta slice view            %7.1f fps   (reslice x3 + compose + annotations: %.1f ms/frame)\n",
              single_fps, compose_ms);
  std::printf("  sagitta slice view, no text   %7.1f fps\n", bare_view_fps);
  std::printf("  VTK bare reslice, grey only   %7.1f fps   (sagitta / bare = %.2f)\n", peer_fps, single_fps / peer_fps);
  std::printf("  sagitta four-view viewer      %7.1f fps   (1024x1024 window, 512x512 per view, no 3D)\n", four_fps);
}

void surfaces_bench() {
  const unsigned nx = 512, ny = 512, nz = 300;
  auto labels = make<sv::LabelImage>(nx, ny, nz);
  paint_blobs(labels.GetPointer(), [](int b, double) { return std::uint16_t(b + 1); });
  const auto table = sv::LabelTable::defaults(10);

  auto t0 = Clock::now();
  const auto surfaces = sv::build_surfaces(labels, table);
  const double ours = since(t0);
  std::size_t triangles = 0;
  double worst = 0;
  for (const auto& s : surfaces) {
    triangles += std::size_t(s.mesh->GetNumberOfCells());
    worst = std::max(worst, std::fabs(s.mesh_volume_mm3 / s.voxel_volume_mm3 - 1));
  }
  sv::SurfaceOptions fast;
  fast.smoothing_iterations = 0;
  fast.normals = false;
  t0 = Clock::now();
  sv::build_surfaces(labels, table, fast);
  const double ours_raw = since(t0);

  t0 = Clock::now();
  {
    auto vtk = sv::to_vtk(labels.GetPointer());
    vtkNew<vtkDiscreteFlyingEdges3D> fe;
    fe->SetInputData(vtk);
    fe->GenerateValues(10, 1, 10);
    fe->ComputeNormalsOff();
    fe->Update();
  }
  const double peer = since(t0);
  std::printf("surfaces for a %ux%ux%u label map with 10 labels:\n", nx, ny, nz);
  std::printf("  sagitta build_surfaces (smoothed, normals, volumes)  %6.2f s  (%zu triangles, worst volume error %.2f%%)\n",
              ours, triangles, 100 * worst);
  std::printf("  sagitta without smoothing/normals                    %6.2f s\n", ours_raw);
  std::printf("  VTK bare discrete flying edges, 10 values, no smooth %6.2f s  (sagitta raw / bare = %.2f)\n", peer,
              ours_raw / peer);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string which = argc > 1 ? argv[1] : "all";
  try {
    if (which == "all" || which == "scroll") scroll_bench();
    if (which == "all" || which == "surfaces") surfaces_bench();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "viewer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}

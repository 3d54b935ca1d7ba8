// Offscreen pictures of a Scene: one view, the 2x2 grid, a montage of axial slices; PNG files.
#include "sagitta/viewer/offscreen_render.h"

#include <vtkImageData.h>
#include <vtkPNGWriter.h>
#include <vtkUnsignedCharArray.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>
#include <vtkWindowToImageFilter.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <unistd.h>

#include "sagitta/viewer/display.h"
#include "sagitta/core/atomic_output.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/slice_view.h"
#include "sagitta/viewer/surface_view.h"

namespace sagitta::viewer {
namespace fs = std::filesystem;

Layout parse_layout(const std::string& name) {
  if (name == "axial") return Layout::Axial;
  if (name == "coronal") return Layout::Coronal;
  if (name == "sagittal") return Layout::Sagittal;
  if (name == "3d") return Layout::ThreeD;
  if (name == "grid") return Layout::Grid;
  if (name == "montage") return Layout::Montage;
  throw ViewerError("unknown view '" + name + "' (axial, coronal, sagittal, 3d, grid or montage)");
}

namespace {

// Axial slice indices for a montage: evenly spaced over the labelled slices when there are
// labels, else over the whole volume (ends excluded, they are rarely informative).
std::vector<int> montage_slices(const Scene& scene, const SliceGrid& grid, int count) {
  int first = 0, last = grid.size[2] - 1;
  if (scene.labels() && scene.max_label() > 0) {
    const auto* labels = scene.labels();
    const auto size = labels->GetLargestPossibleRegion().GetSize();
    int lo = grid.size[2], hi = -1;
    const std::uint16_t* p = labels->GetBufferPointer();
    for (std::size_t z = 0; z < size[2]; ++z)
      for (std::size_t y = 0; y < size[1]; ++y)
        for (std::size_t x = 0; x < size[0]; ++x) {
          if (!p[(z * size[1] + y) * size[0] + x]) continue;
          itk::Index<3> idx{{long(x), long(y), long(z)}};
          itk::Point<double, 3> pt;
          labels->TransformIndexToPhysicalPoint(idx, pt);
          const int k = grid.slice_of({pt[0], pt[1], pt[2]});
          lo = std::min(lo, k);
          hi = std::max(hi, k);
          x = size[0];  // one voxel per row is enough for the slice range
        }
    if (hi >= lo) {
      first = lo;
      last = hi;
    }
  }
  std::vector<int> slices;
  for (int i = 0; i < count; ++i)
    slices.push_back(first + int(std::lround((last - first) * (i + 1.0) / (count + 1.0))));
  return slices;
}

// The views of one picture and where each goes (viewport fractions).
struct Views {
  struct Place {
    vtkRenderer* renderer;
    double x0, y0, x1, y1;
  };
  const Scene& scene;
  Vec3 focus;
  std::vector<std::unique_ptr<SliceView>> slices;
  std::unique_ptr<SurfaceView> surface;
  std::vector<Place> places;

  SliceView* slice(Orientation o) {
    slices.push_back(std::make_unique<SliceView>(scene, o));
    slices.back()->set_focus(focus);
    return slices.back().get();
  }
};

void single_slice(Views& v, const RenderRequest& r) {
  const Orientation o = r.layout == Layout::Axial ? Orientation::Axial
                        : r.layout == Layout::Coronal ? Orientation::Coronal
                                                      : Orientation::Sagittal;
  SliceView* view = v.slice(o);
  if (r.slice) {
    if (*r.slice < 0 || *r.slice >= view->grid().size[2])
      throw ViewerError("slice " + std::to_string(*r.slice) + " is outside the " + to_string(o) + " view's 0.." +
                        std::to_string(view->grid().size[2] - 1));
    view->set_slice(*r.slice);
  }
  v.places.push_back({view->renderer(), 0, 0, 1, 1});
}

void grid(Views& v, const RenderRequest& r) {
  v.places.push_back({v.slice(Orientation::Axial)->renderer(), 0, 0.5, 0.5, 1});
  v.places.push_back({v.slice(Orientation::Coronal)->renderer(), 0.5, 0.5, 1, 1});
  v.places.push_back({v.slice(Orientation::Sagittal)->renderer(), 0, 0, 0.5, 0.5});
  v.surface = std::make_unique<SurfaceView>(v.scene, r.surfaces);
  v.places.push_back({v.surface->renderer(), 0.5, 0, 1, 0.5});
}

void montage(Views& v, const RenderRequest& r) {
  if (r.montage_count < 1 || r.montage_count > 64) throw ViewerError("montage count must be within 1..64");
  const int cols = int(std::ceil(std::sqrt(double(r.montage_count))));
  const int rows = (r.montage_count + cols - 1) / cols;
  SliceView* first = v.slice(Orientation::Axial);
  const auto ks = montage_slices(v.scene, first->grid(), r.montage_count);
  for (int i = 0; i < r.montage_count; ++i) {
    SliceView* view = i == 0 ? first : v.slice(Orientation::Axial);
    view->set_slice(ks[std::size_t(i)]);
    const int c = i % cols, row = i / cols;
    v.places.push_back({view->renderer(), double(c) / cols, 1.0 - double(row + 1) / rows, double(c + 1) / cols,
                        1.0 - double(row) / rows});
  }
}

}  // namespace

vtkSmartPointer<vtkImageData> render_image(const Scene& scene, const RenderRequest& r) {
  if (r.width < 16 || r.height < 16 || r.width > 8192 || r.height > 8192)
    throw ViewerError("picture size must be within 16..8192 pixels");
  require_display("use a machine with a display");
  vtkNew<vtkRenderWindow> window;
  window->SetDisplayId(shared_display());
  window->SetOffScreenRendering(1);
  window->SetMultiSamples(0);  // deterministic pictures
  window->SetSize(r.width, r.height);
  window->SetBorders(0);

  Views v{scene, r.focus ? *r.focus : scene.focus_point(), {}, {}, {}};
  switch (r.layout) {
    case Layout::Axial:
    case Layout::Coronal:
    case Layout::Sagittal: single_slice(v, r); break;
    case Layout::ThreeD:
      v.surface = std::make_unique<SurfaceView>(scene, r.surfaces);
      v.places.push_back({v.surface->renderer(), 0, 0, 1, 1});
      break;
    case Layout::Grid: grid(v, r); break;
    case Layout::Montage: montage(v, r); break;
  }
  for (const auto& p : v.places) {
    p.renderer->SetViewport(p.x0, p.y0, p.x1, p.y1);
    window->AddRenderer(p.renderer);
  }
  for (auto& view : v.slices) {
    view->reset_camera();
    view->update();
  }
  if (v.surface) {
    v.surface->reset_camera();
    if (r.azimuth != 0 || r.elevation != 0) v.surface->rotate(r.azimuth, r.elevation);
  }
  window->Render();
  return window_picture(window);
}

vtkSmartPointer<vtkImageData> window_picture(vtkRenderWindow* window) {
  vtkNew<vtkWindowToImageFilter> grabber;
  grabber->SetInput(window);
  grabber->SetInputBufferTypeToRGB();
  grabber->ReadFrontBufferOff();
  grabber->Update();
  auto image = vtkSmartPointer<vtkImageData>::New();
  image->DeepCopy(grabber->GetOutput());
  return image;
}

void write_png(vtkImageData* image, const fs::path& png) {
  const fs::path folder = png.parent_path().empty() ? fs::path(".") : png.parent_path();
  if (!fs::is_directory(folder)) throw ViewerError(png.string() + ": the output folder does not exist");
  write_atomically(png, [&](const fs::path& tmp) {
    vtkNew<vtkPNGWriter> writer;
    writer->SetInputData(image);
    writer->SetFileName(tmp.string().c_str());
    writer->Write();
    if (writer->GetErrorCode() != 0 || !fs::exists(tmp)) throw ViewerError(png.string() + ": cannot write the picture");
  });
}

std::string png_bytes(vtkImageData* image) {
  vtkNew<vtkPNGWriter> writer;
  writer->SetInputData(image);
  writer->WriteToMemoryOn();
  writer->Write();
  vtkUnsignedCharArray* bytes = writer->GetResult();
  if (writer->GetErrorCode() != 0 || !bytes || bytes->GetNumberOfTuples() == 0)
    throw ViewerError("cannot encode the picture as PNG");
  return std::string(reinterpret_cast<const char*>(bytes->GetPointer(0)), std::size_t(bytes->GetNumberOfTuples()));
}

void render_png(const Scene& scene, const RenderRequest& request, const fs::path& png) {
  write_png(render_image(scene, request), png);
}

}  // namespace sagitta::viewer

// Label surfaces: one smoothed, closed mesh per label in patient coordinates, their volumes, and
// STL/VTP/OBJ files (see surfaces.h).
#include "sagitta/viewer/surfaces.h"

#include <fmt/format.h>
#include <vtkAppendPolyData.h>
#include <vtkCellData.h>
#include <vtkDiscreteFlyingEdges3D.h>
#include <vtkFieldData.h>
#include <vtkImageData.h>
#include <vtkIntArray.h>
#include <vtkMassProperties.h>
#include <vtkMatrix4x4.h>
#include <vtkOBJWriter.h>
#include <vtkPolyDataNormals.h>
#include <vtkQuadricDecimation.h>
#include <vtkReverseSense.h>
#include <vtkSTLWriter.h>
#include <vtkStringArray.h>
#include <vtkTransform.h>
#include <vtkTransformPolyDataFilter.h>
#include <vtkTriangleFilter.h>
#include <vtkWindowedSincPolyDataFilter.h>
#include <vtkXMLPolyDataWriter.h>

#include <algorithm>
#include <climits>
#include <type_traits>
#include <cctype>
#include <unistd.h>

#include "sagitta/core/atomic_output.h"
#include "sagitta/viewer/error.h"

namespace sagitta::viewer {
namespace fs = std::filesystem;
namespace {

struct Box {
  std::array<long, 3> lo{LONG_MAX, LONG_MAX, LONG_MAX}, hi{-1, -1, -1};
  std::size_t voxels = 0;
};

// Bounding boxes and voxel counts of every label in one pass over the map.
std::vector<Box> label_boxes(const LabelImage* labels) {
  const auto size = labels->GetLargestPossibleRegion().GetSize();
  std::vector<Box> boxes;
  const std::uint16_t* p = labels->GetBufferPointer();
  for (long z = 0; z < long(size[2]); ++z)
    for (long y = 0; y < long(size[1]); ++y) {
      const std::uint16_t* row = p + (std::size_t(z) * size[1] + std::size_t(y)) * size[0];
      for (long x = 0; x < long(size[0]); ++x) {
        const std::uint16_t v = row[x];
        if (v == 0) continue;
        if (v >= boxes.size()) boxes.resize(std::size_t(v) + 1);
        Box& b = boxes[v];
        ++b.voxels;
        const long c[3] = {x, y, z};
        for (int d = 0; d < 3; ++d) {
          b.lo[std::size_t(d)] = std::min(b.lo[std::size_t(d)], c[d]);
          b.hi[std::size_t(d)] = std::max(b.hi[std::size_t(d)], c[d]);
        }
      }
    }
  return boxes;
}

// A binary copy of the label's bounding box with one empty voxel of padding on every side, so
// the surface closes even where the label touches the volume's border.
vtkSmartPointer<vtkImageData> padded_mask(const LabelImage* labels, const Box& b, int value) {
  const auto size = labels->GetLargestPossibleRegion().GetSize();
  const auto& spacing = labels->GetSpacing();
  std::array<long, 3> lo{}, n{};
  for (std::size_t d = 0; d < 3; ++d) {
    lo[d] = b.lo[d] - 1;
    n[d] = b.hi[d] - b.lo[d] + 3;
  }
  auto mask = vtkSmartPointer<vtkImageData>::New();
  mask->SetExtent(int(lo[0]), int(lo[0] + n[0] - 1), int(lo[1]), int(lo[1] + n[1] - 1), int(lo[2]), int(lo[2] + n[2] - 1));
  mask->SetSpacing(spacing[0], spacing[1], spacing[2]);
  mask->SetOrigin(0, 0, 0);
  mask->AllocateScalars(VTK_UNSIGNED_CHAR, 1);
  auto* m = static_cast<std::uint8_t*>(mask->GetScalarPointer());
  std::fill(m, m + n[0] * n[1] * n[2], std::uint8_t(0));
  const std::uint16_t* p = labels->GetBufferPointer();
  for (long z = b.lo[2]; z <= b.hi[2]; ++z)
    for (long y = b.lo[1]; y <= b.hi[1]; ++y) {
      const std::uint16_t* row = p + (std::size_t(z) * size[1] + std::size_t(y)) * size[0];
      std::uint8_t* dst = m + ((z - lo[2]) * n[1] + (y - lo[1])) * n[0];
      for (long x = b.lo[0]; x <= b.hi[0]; ++x) dst[x - lo[0]] = row[x] == value;
    }
  return mask;
}

// Grid coordinates (index x spacing) -> LPS: rotation by the direction, then the origin.
vtkSmartPointer<vtkMatrix4x4> grid_to_patient(const LabelImage* labels) {
  auto m = vtkSmartPointer<vtkMatrix4x4>::New();
  for (unsigned r = 0; r < 3; ++r) {
    for (unsigned c = 0; c < 3; ++c) m->SetElement(int(r), int(c), labels->GetDirection()(r, c));
    m->SetElement(int(r), 3, labels->GetOrigin()[r]);
  }
  return m;
}

// Mask -> contour -> smoothing -> decimation -> patient space -> normals.
vtkSmartPointer<vtkPolyData> mesh_of(vtkImageData* mask, vtkMatrix4x4* to_lps, const SurfaceOptions& options) {
  vtkNew<vtkDiscreteFlyingEdges3D> contour;
  contour->SetInputData(mask);
  contour->SetValue(0, 1);
  contour->ComputeNormalsOff();
  contour->ComputeGradientsOff();
  contour->ComputeScalarsOff();
  vtkAlgorithmOutput* port = contour->GetOutputPort();
  vtkNew<vtkWindowedSincPolyDataFilter> smooth;
  if (options.smoothing_iterations > 0) {
    smooth->SetInputConnection(port);
    smooth->SetNumberOfIterations(options.smoothing_iterations);
    smooth->SetPassBand(options.pass_band);
    smooth->BoundarySmoothingOff();
    smooth->FeatureEdgeSmoothingOff();
    smooth->NonManifoldSmoothingOn();
    smooth->NormalizeCoordinatesOn();  // pass band independent of the physical size
    port = smooth->GetOutputPort();
  }
  vtkNew<vtkQuadricDecimation> decimate;
  if (options.decimation > 0) {
    decimate->SetInputConnection(port);
    decimate->SetTargetReduction(options.decimation);
    decimate->VolumePreservationOn();
    port = decimate->GetOutputPort();
  }
  vtkNew<vtkTransform> transform;
  transform->SetMatrix(to_lps);
  vtkNew<vtkTransformPolyDataFilter> to_patient;
  to_patient->SetInputConnection(port);
  to_patient->SetTransform(transform);
  port = to_patient->GetOutputPort();
  // A left-handed direction (det -1) mirrors the mesh and turns its triangles inside out.
  vtkNew<vtkReverseSense> reverse;
  if (to_lps->Determinant() < 0) {
    reverse->SetInputConnection(port);
    reverse->ReverseCellsOn();
    reverse->ReverseNormalsOn();
    port = reverse->GetOutputPort();
  }
  vtkNew<vtkPolyDataNormals> normals;
  normals->SetInputConnection(port);
  normals->SplittingOff();
  normals->ConsistencyOn();
  normals->AutoOrientNormalsOff();
  normals->SetComputePointNormals(options.normals);
  normals->Update();
  auto mesh = vtkSmartPointer<vtkPolyData>::New();
  mesh->DeepCopy(normals->GetOutput());
  return mesh;
}

double enclosed_volume(vtkPolyData* mesh) {
  vtkNew<vtkTriangleFilter> triangles;
  triangles->SetInputData(mesh);
  vtkNew<vtkMassProperties> mass;
  mass->SetInputConnection(triangles->GetOutputPort());
  mass->Update();
  return mass->GetVolume();
}

}  // namespace

std::vector<LabelSurface> build_surfaces(const LabelImage* labels, const LabelTable& table, const SurfaceOptions& options) {
  if (!labels) throw ViewerError("no label map to build surfaces from");
  if (options.decimation < 0 || options.decimation > 0.95) throw ViewerError("decimation must be within 0..0.95");
  const auto boxes = label_boxes(labels);
  std::vector<int> wanted = options.labels;
  if (wanted.empty())
    for (std::size_t v = 1; v < boxes.size(); ++v)
      if (boxes[v].voxels) wanted.push_back(int(v));
  for (int v : wanted)
    if (v <= 0 || std::size_t(v) >= boxes.size() || boxes[std::size_t(v)].voxels == 0)
      throw ViewerError(fmt::format("label {} is not in the label map", v));

  const auto to_lps = grid_to_patient(labels);
  const auto& spacing = labels->GetSpacing();
  std::vector<LabelSurface> out;
  for (int value : wanted) {
    const Box& b = boxes[std::size_t(value)];
    LabelSurface s;
    s.label = value;
    const LabelStyle* style = table.find(value);
    s.name = style ? style->name : "label " + std::to_string(value);
    s.mesh = mesh_of(padded_mask(labels, b, value), to_lps, options);
    s.voxels = b.voxels;
    s.voxel_volume_mm3 = double(b.voxels) * spacing[0] * spacing[1] * spacing[2];
    s.mesh_volume_mm3 = enclosed_volume(s.mesh);
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

std::string safe_name(const std::string& name) {
  std::string s;
  for (char c : name) s += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return s;
}

vtkSmartPointer<vtkPolyData> in_coordinates(vtkPolyData* mesh, MeshCoordinates c) {
  if (c == MeshCoordinates::LPS) return mesh;
  // RAS = LPS with x and y negated: a rotation by 180 degrees about z, so triangles keep their sense.
  vtkNew<vtkTransform> t;
  t->Scale(-1, -1, 1);
  vtkNew<vtkTransformPolyDataFilter> f;
  f->SetInputData(mesh);
  f->SetTransform(t);
  f->Update();
  return f->GetOutput();
}

template <typename Writer>
void write_one(vtkPolyData* mesh, const fs::path& path) {
  write_atomically(path, [&](const fs::path& tmp) {
    vtkNew<Writer> w;
    w->SetInputData(mesh);
    w->SetFileName(tmp.string().c_str());
    if constexpr (std::is_same_v<Writer, vtkSTLWriter>) w->SetFileTypeToBinary();
    if constexpr (std::is_same_v<Writer, vtkXMLPolyDataWriter>) w->SetDataModeToAppended();
    if (w->Write() != 1 || !fs::exists(tmp)) throw ViewerError(path.string() + ": cannot write the mesh");
  });
}

}  // namespace

std::vector<fs::path> write_surfaces(const std::vector<LabelSurface>& surfaces, const fs::path& path, MeshCoordinates c) {
  if (surfaces.empty()) throw ViewerError("no surfaces to write (the label map is empty)");
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  if (ext != ".vtp" && ext != ".stl" && ext != ".obj")
    throw ViewerError(path.string() + ": unknown mesh format (use .stl, .vtp or .obj)");
  const fs::path folder = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  if (!fs::is_directory(folder)) throw ViewerError(path.string() + ": the output folder does not exist");

  std::vector<fs::path> written;
  if (ext == ".vtp") {
    vtkNew<vtkAppendPolyData> append;
    vtkNew<vtkStringArray> names;
    names->SetName("LabelNames");
    vtkNew<vtkIntArray> values;
    values->SetName("LabelValues");
    for (const auto& s : surfaces) {
      auto mesh = vtkSmartPointer<vtkPolyData>::New();
      mesh->ShallowCopy(in_coordinates(s.mesh, c));
      vtkNew<vtkIntArray> label;
      label->SetName("Label");
      label->SetNumberOfTuples(mesh->GetNumberOfCells());
      label->Fill(s.label);
      mesh->GetCellData()->AddArray(label);
      append->AddInputData(mesh);
      names->InsertNextValue(s.name);
      values->InsertNextValue(s.label);
    }
    append->Update();
    vtkNew<vtkPolyData> all;
    all->ShallowCopy(append->GetOutput());
    all->GetFieldData()->AddArray(names);
    all->GetFieldData()->AddArray(values);
    vtkNew<vtkStringArray> space;
    space->SetName("CoordinateSystem");
    space->InsertNextValue(c == MeshCoordinates::LPS ? "LPS" : "RAS");
    all->GetFieldData()->AddArray(space);
    write_one<vtkXMLPolyDataWriter>(all, path);
    written.push_back(path);
    return written;
  }
  for (const auto& s : surfaces) {
    fs::path target = path;
    if (surfaces.size() > 1)
      target = folder / (path.stem().string() + "_" + std::to_string(s.label) +
                         (s.name.empty() ? "" : "_" + safe_name(s.name)) + path.extension().string());
    auto mesh = in_coordinates(s.mesh, c);
    if (ext == ".stl")
      write_one<vtkSTLWriter>(mesh, target);
    else
      write_one<vtkOBJWriter>(mesh, target);
    written.push_back(target);
  }
  return written;
}

}  // namespace sagitta::viewer

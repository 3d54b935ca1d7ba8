#pragma once
// Label surfaces: one closed, smoothed triangle mesh per label in patient coordinates (mm), for
// the 3D view, 3D printing and Slicer.
#include <vtkPolyData.h>
#include <vtkSmartPointer.h>

#include <filesystem>
#include <string>
#include <vector>

#include "sagitta/viewer/overlays.h"

namespace sagitta::viewer {

struct SurfaceOptions {
  std::vector<int> labels;         // label values to build; empty: every label present
  int smoothing_iterations = 20;   // windowed sinc iterations; 0: no smoothing
  double pass_band = 0.1;          // windowed sinc pass band (smaller: smoother)
  double decimation = 0.0;         // target reduction of the triangle count, 0..0.95
  bool normals = true;             // point normals for shading
};

struct LabelSurface {
  int label = 0;
  std::string name;
  vtkSmartPointer<vtkPolyData> mesh;  // triangles, points in LPS mm, outward normals
  std::size_t voxels = 0;
  double voxel_volume_mm3 = 0;        // voxels x voxel volume
  double mesh_volume_mm3 = 0;         // enclosed volume of the mesh
};

// One surface per label (discrete flying edges on the label's padded bounding box, so each
// surface is closed even where the label touches the volume's border). Throws ViewerError when a
// requested label is absent.
std::vector<LabelSurface> build_surfaces(const LabelImage* labels, const LabelTable& table,
                                         const SurfaceOptions& options = {});

enum class MeshCoordinates { LPS, RAS };

// Writes the surfaces: .vtp holds every surface in one file (cell array "Label", field array
// "LabelNames"); .stl and .obj hold one surface each, so with several labels the files are named
// <stem>_<value>[_<name>]<ext> beside `path`. Writes are atomic. Returns the files written.
std::vector<std::filesystem::path> write_surfaces(const std::vector<LabelSurface>& surfaces,
                                                  const std::filesystem::path& path,
                                                  MeshCoordinates coordinates = MeshCoordinates::LPS);

}  // namespace sagitta::viewer

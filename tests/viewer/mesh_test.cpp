// Label surfaces: enclosed volume against the voxel volume, bounds in patient millimetres,
// files written in LPS or RAS, and the `sagitta mesh` command.
#include <gtest/gtest.h>
#include <vtkOBJReader.h>
#include <vtkPolyData.h>
#include <vtkSTLReader.h>
#include <vtkXMLPolyDataReader.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "phantom.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/surfaces.h"
#include "support/test_paths.h"

namespace sv = sagitta::viewer;
namespace svt = sagitta::viewer::testing;

namespace {

// Two ellipsoids (axis-aligned in the patient) on an anisotropic, oblique grid.
struct MeshPhantom {
  svt::Grid grid;
  svt::Blob liver{{-20, 5, 10}, {14, 10, 8}};
  svt::Blob lesion{{18, -6, -4}, {7, 9, 6}};
  sv::LabelImage::Pointer labels;
  MeshPhantom() {
    grid.size = {110, 90, 60};
    grid.spacing = {0.7, 0.8, 1.2};
    grid.direction = svt::oblique_direction(20, 10);
    grid = grid.centred();
    labels = svt::make_labels(grid, {{1, liver}, {4, lesion}});
  }
};

void expect_bounds(vtkPolyData* mesh, const svt::Blob& b, double tolerance) {
  double bounds[6];
  mesh->GetBounds(bounds);
  for (int d = 0; d < 3; ++d) {
    EXPECT_NEAR(bounds[2 * d], b.centre[std::size_t(d)] - b.semi_axes[std::size_t(d)], tolerance) << "axis " << d;
    EXPECT_NEAR(bounds[2 * d + 1], b.centre[std::size_t(d)] + b.semi_axes[std::size_t(d)], tolerance) << "axis " << d;
  }
}

}  // namespace

TEST(Surfaces, VolumeWithinTwoPercentOfTheVoxelsAndBoundsInMillimetres) {
  MeshPhantom ph;
  const auto table = sv::LabelTable::defaults(4);
  const auto surfaces = sv::build_surfaces(ph.labels, table);
  ASSERT_EQ(surfaces.size(), 2u);
  EXPECT_EQ(surfaces[0].label, 1);
  EXPECT_EQ(surfaces[1].label, 4);
  for (const auto& s : surfaces) {
    ASSERT_GT(s.voxels, 100u);
    EXPECT_NEAR(s.mesh_volume_mm3, s.voxel_volume_mm3, 0.02 * s.voxel_volume_mm3)
        << "label " << s.label << ": mesh " << s.mesh_volume_mm3 << " mm3, voxels " << s.voxel_volume_mm3 << " mm3";
    EXPECT_GT(s.mesh->GetNumberOfPolys(), 500);
  }
  // The analytic ellipsoid volumes agree too (voxelisation error only).
  EXPECT_NEAR(surfaces[0].mesh_volume_mm3, 4.0 / 3 * M_PI * 14 * 10 * 8, 0.04 * 4.0 / 3 * M_PI * 14 * 10 * 8);
  // Bounds in patient millimetres: the ellipsoids' extents, within about one voxel.
  expect_bounds(surfaces[0].mesh, ph.liver, 1.2);
  expect_bounds(surfaces[1].mesh, ph.lesion, 1.2);
}

TEST(Surfaces, DecimationKeepsTheVolumeAndLabelsAreChecked) {
  MeshPhantom ph;
  sv::SurfaceOptions o;
  o.labels = {4};
  const auto full = sv::build_surfaces(ph.labels, sv::LabelTable::defaults(4), o);
  o.decimation = 0.7;
  const auto reduced = sv::build_surfaces(ph.labels, sv::LabelTable::defaults(4), o);
  ASSERT_EQ(reduced.size(), 1u);
  EXPECT_LT(reduced[0].mesh->GetNumberOfPolys(), full[0].mesh->GetNumberOfPolys() * 0.4);
  EXPECT_NEAR(reduced[0].mesh_volume_mm3, full[0].mesh_volume_mm3, 0.02 * full[0].mesh_volume_mm3);
  o.labels = {2};
  EXPECT_THROW(sv::build_surfaces(ph.labels, sv::LabelTable::defaults(4), o), sv::ViewerError);
}

TEST(Surfaces, LabelTouchingTheBorderGivesAClosedSurface) {
  svt::Grid g;
  g.size = {40, 40, 20};
  g.spacing = {1, 1, 1};
  g = g.centred();
  // A box filling the whole grid: every face lies on the volume's border.
  auto labels = sv::LabelImage::New();
  labels->SetRegions(sv::LabelImage::RegionType({{0, 0, 0}}, {{40, 40, 20}}));
  labels->Allocate();
  labels->FillBuffer(7);
  const auto s = sv::build_surfaces(labels, sv::LabelTable::defaults(7));
  ASSERT_EQ(s.size(), 1u);
  EXPECT_NEAR(s[0].mesh_volume_mm3, 40 * 40 * 20, 0.02 * 40 * 40 * 20);
}

TEST(Surfaces, FilesInLpsOrRasAndOnePerLabel) {
  MeshPhantom ph;
  const auto dir = sagitta::testing::scratch_dir();
  const auto surfaces = sv::build_surfaces(ph.labels, sv::LabelTable::defaults(4));
  const auto stl = sv::write_surfaces(surfaces, dir / "organs.stl");
  ASSERT_EQ(stl.size(), 2u);
  EXPECT_EQ(stl[0].filename(), "organs_1_label_1.stl");
  vtkNew<vtkSTLReader> reader;
  reader->SetFileName(stl[1].string().c_str());
  reader->Update();
  expect_bounds(reader->GetOutput(), ph.lesion, 1.2);

  const auto ras = sv::write_surfaces({surfaces[1]}, dir / "lesion_ras.obj", sv::MeshCoordinates::RAS);
  ASSERT_EQ(ras.size(), 1u);
  vtkNew<vtkOBJReader> obj;
  obj->SetFileName(ras[0].string().c_str());
  obj->Update();
  svt::Blob flipped = ph.lesion;
  flipped.centre[0] = -flipped.centre[0];
  flipped.centre[1] = -flipped.centre[1];
  expect_bounds(obj->GetOutput(), flipped, 1.2);

  const auto vtp = sv::write_surfaces(surfaces, dir / "all.vtp");
  vtkNew<vtkXMLPolyDataReader> xml;
  xml->SetFileName(vtp[0].string().c_str());
  xml->Update();
  EXPECT_EQ(xml->GetOutput()->GetNumberOfCells(),
            surfaces[0].mesh->GetNumberOfCells() + surfaces[1].mesh->GetNumberOfCells());
  EXPECT_THROW(sv::write_surfaces(surfaces, dir / "x.ply"), sv::ViewerError);
  EXPECT_THROW(sv::write_surfaces(surfaces, dir / "missing" / "x.stl"), sv::ViewerError);
  // Nothing partial left behind.
  for (const auto& e : std::filesystem::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
}

TEST(MeshCommand, WritesSurfacesAndReportsVolumes) {
  MeshPhantom ph;
  const auto dir = sagitta::testing::scratch_dir();
  auto as_float = sagitta::Image::New();
  as_float->CopyInformation(ph.labels);
  as_float->SetRegions(ph.labels->GetLargestPossibleRegion());
  as_float->Allocate();
  for (std::size_t i = 0; i < ph.labels->GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
    as_float->GetBufferPointer()[i] = ph.labels->GetBufferPointer()[i];
  sagitta::write_volumes({as_float}, dir / "labels.nrrd", {});
  const auto bin = sagitta::testing::sagitta_executable().string();
  auto r = sagitta::testing::run_command(bin + " mesh " + (dir / "labels.nrrd").string() + " -o " +
                                         (dir / "m.vtp").string() + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(dir / "m.vtp"));
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["surfaces"].size(), 2u);
  for (const auto& s : j["surfaces"])
    EXPECT_NEAR(s["mesh_volume_ml"].get<double>(), s["voxel_volume_ml"].get<double>(),
                0.02 * s["voxel_volume_ml"].get<double>());
  r = sagitta::testing::run_command(bin + " mesh " + (dir / "labels.nrrd").string() + " -o " +
                                    (dir / "m.ply").string());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("unknown mesh format"), std::string::npos) << r.err;
}

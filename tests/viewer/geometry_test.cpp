// ITK -> VTK bridging, slice grids, window/level and overlay geometry checks: no rendering.
#include <gtest/gtest.h>
#include <vtkDataArray.h>
#include <vtkImageData.h>
#include <vtkMatrix3x3.h>
#include <vtkPointData.h>

#include <cmath>
#include <fstream>

#include "phantom.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/itk_to_vtk.h"
#include "sagitta/viewer/overlays.h"
#include "sagitta/viewer/scene.h"
#include "sagitta/viewer/slice_geometry.h"
#include "sagitta/viewer/window_level.h"
#include "support/test_paths.h"

namespace sv = sagitta::viewer;
namespace svt = sagitta::viewer::testing;

TEST(ItkToVtk, SharesTheBufferAndKeepsGeometry) {
  svt::Grid g;
  g.direction = svt::oblique_direction(30, 15);
  g = g.centred({10, -20, 5});
  auto image = svt::make_volume(g, {{{10, -20, 5}, {4, 4, 4}, 500}});
  auto vtk = sv::to_vtk(image.GetPointer());
  EXPECT_EQ(vtk->GetScalarPointer(), static_cast<void*>(image->GetBufferPointer())) << "must be zero-copy";
  int dims[3];
  vtk->GetDimensions(dims);
  EXPECT_EQ(dims[0], 64);
  EXPECT_EQ(dims[2], 40);
  for (int r = 0; r < 3; ++r) {
    EXPECT_DOUBLE_EQ(vtk->GetOrigin()[r], g.origin[std::size_t(r)]);
    EXPECT_DOUBLE_EQ(vtk->GetSpacing()[r], g.spacing[std::size_t(r)]);
    for (int c = 0; c < 3; ++c)
      EXPECT_NEAR(vtk->GetDirectionMatrix()->GetElement(r, c), g.direction[std::size_t(3 * r + c)], 1e-12);
  }
  // VTK's own index -> physical transform agrees with ITK's for a far corner voxel.
  double p[3];
  vtk->TransformIndexToPhysicalPoint(63, 5, 39, p);
  itk::Point<double, 3> q;
  image->TransformIndexToPhysicalPoint({{63, 5, 39}}, q);
  for (int d = 0; d < 3; ++d) EXPECT_NEAR(p[d], q[unsigned(d)], 1e-9);
  // The VTK image keeps the ITK buffer alive on its own.
  float* buffer = image->GetBufferPointer();
  const float centre_value = image->GetPixel({{32, 32, 20}});
  image = nullptr;
  EXPECT_EQ(vtk->GetScalarPointer(), static_cast<void*>(buffer));
  EXPECT_EQ(vtk->GetPointData()->GetScalars()->GetTuple1((20 * 64 + 32) * 64 + 32), centre_value);
}

TEST(SliceGrid, AxisAlignedGridIsTheVoxelGrid) {
  svt::Grid g;
  g = g.centred();
  auto image = svt::make_volume(g, {});
  const auto axial = sv::SliceGrid::of(image, sv::Orientation::Axial);
  EXPECT_EQ(axial.size[0], 64);
  EXPECT_EQ(axial.size[1], 64);
  EXPECT_EQ(axial.size[2], 40);
  EXPECT_DOUBLE_EQ(axial.spacing[2], 2.0);
  // Axial slice k is voxel slice k (z grows with k here).
  EXPECT_EQ(axial.slice_of({0, 0, g.origin[2] + 7 * 2.0}), 7);
  const auto sagittal = sv::SliceGrid::of(image, sv::Orientation::Sagittal);
  EXPECT_EQ(sagittal.size[0], 64);  // right = posterior
  EXPECT_EQ(sagittal.size[1], 40);  // up = superior
  EXPECT_EQ(sagittal.size[2], 64);
  EXPECT_DOUBLE_EQ(sagittal.spacing[1], 2.0);
  // Radiological convention: axial right = patient left (+x), up = anterior (-y).
  const auto a = sv::plane_axes(sv::Orientation::Axial);
  EXPECT_EQ(a.right, (sv::Vec3{1, 0, 0}));
  EXPECT_EQ(a.up, (sv::Vec3{0, -1, 0}));
  EXPECT_EQ(std::string(a.letters.begin(), a.letters.end()), "RLAP");
  const auto c = sv::plane_axes(sv::Orientation::Coronal);
  EXPECT_EQ(std::string(c.letters.begin(), c.letters.end()), "RLSI");
  // A point maps to pixel coordinates and back.
  const sv::Vec3 p = axial.patient_point(10, 20, 5);
  EXPECT_NEAR(p[0], g.origin[0] + 10 * 0.8, 1e-9);
  EXPECT_NEAR(p[1], g.origin[1] + (63 - 20) * 0.8, 1e-9);  // up = anterior: rows count from posterior
  EXPECT_NEAR(p[2], g.origin[2] + 5 * 2.0, 1e-9);
}

TEST(SliceGrid, ObliqueGridCoversTheRotatedVolume) {
  svt::Grid g;
  g.size = {50, 50, 30};
  g.spacing = {1, 1, 1};
  g.direction = svt::oblique_direction(30, 0);
  g = g.centred();
  auto image = svt::make_volume(g, {});
  const auto axial = sv::SliceGrid::of(image, sv::Orientation::Axial);
  // A 49 mm square rotated by 30 degrees spans 49 * (cos 30 + sin 30) = 66.9 mm.
  const double span = 49 * (std::cos(M_PI / 6) + std::sin(M_PI / 6));
  EXPECT_NEAR((axial.size[0] - 1) * axial.spacing[0], span, 1.0);
  EXPECT_NEAR((axial.size[1] - 1) * axial.spacing[1], span, 1.0);
  EXPECT_EQ(axial.size[2], 30);
}

TEST(WindowLevel, PresetsAndPercentiles) {
  EXPECT_EQ(sv::find_preset("brain")->window, 80);
  EXPECT_EQ(sv::find_preset("lung")->level, -600);
  EXPECT_EQ(sv::find_preset("bone")->window, 1800);
  EXPECT_EQ(sv::find_preset("soft")->window, 400);
  EXPECT_FALSE(sv::find_preset("liver"));
  svt::Grid g;
  g = g.centred();
  // MR-like: background 100, a blob of 900 filling ~14% of the volume.
  auto mr = svt::make_volume(g, {{{0, 0, 0}, {15, 15, 30}, 900}}, 100);
  const auto wl = sv::auto_window(mr);
  EXPECT_NEAR(wl.level - wl.window / 2, 100, 1);
  EXPECT_NEAR(wl.level + wl.window / 2, 900, 1);
  EXPECT_EQ(sv::default_window(mr, "MR").name, "auto");
  EXPECT_EQ(sv::default_window(mr, "CT").name, "soft-tissue");
  auto ct = svt::make_volume(g, {{{0, 0, 0}, {20, 20, 20}, 40}}, -1000);
  EXPECT_EQ(sv::default_window(ct, "").name, "soft-tissue") << "air at -1000 means CT";
}

TEST(Overlays, LabelMapOnAnotherGridIsRefusedOrResampled) {
  const auto dir = sagitta::testing::scratch_dir();
  svt::Grid g;
  g = g.centred();
  auto volume = svt::make_volume(g, {});
  svt::Grid other = g;
  other.spacing = {1.6, 1.6, 4.0};
  other.size = {32, 32, 20};
  other = other.centred();
  auto labels = svt::make_volume(other, {{{5, 5, 0}, {8, 8, 8}, 3}});
  sagitta::write_volumes({labels}, dir / "labels.nrrd", {sagitta::OutputPixelType::Float});
  try {
    sv::read_label_map(dir / "labels.nrrd", volume);
    FAIL() << "a label map on another grid must be refused";
  } catch (const sv::ViewerError& e) {
    EXPECT_NE(std::string(e.what()).find("--resample-overlays"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("size"), std::string::npos) << e.what();
  }
  auto resampled = sv::read_label_map(dir / "labels.nrrd", volume, sv::GeometryMismatch::Resample);
  EXPECT_TRUE(sv::same_geometry(volume, resampled));
  // Nearest neighbour keeps label values and the blob's physical place.
  itk::Index<3> idx;
  itk::Point<double, 3> centre;
  centre[0] = 5;
  centre[1] = 5;
  centre[2] = 0;
  resampled->TransformPhysicalPointToIndex(centre, idx);
  EXPECT_EQ(resampled->GetPixel(idx), 3);
  const auto counts = sv::label_voxel_counts(resampled);
  ASSERT_EQ(counts.size(), 4u);
  EXPECT_EQ(counts[1] + counts[2], 0u);
  // Same physical volume (4/3 pi 8^3 = 2145 mm^3) within voxelisation error.
  EXPECT_NEAR(counts[3] * 0.8 * 0.8 * 2.0, 4.0 / 3 * M_PI * 512, 0.1 * 2145);
}

TEST(Overlays, FractionalValuesAreNotALabelMap) {
  const auto dir = sagitta::testing::scratch_dir();
  svt::Grid g;
  g = g.centred();
  auto ct = svt::make_volume(g, {{{0, 0, 0}, {5, 5, 5}, 0.5f}});
  sagitta::write_volumes({ct}, dir / "ct.nrrd", {sagitta::OutputPixelType::Float});
  EXPECT_THROW(sv::read_label_map(dir / "ct.nrrd", ct), sv::ViewerError);
  EXPECT_THROW(sv::read_label_map(dir / "missing.nrrd", ct), sv::ViewerError);
}

TEST(Overlays, ModelCardColoursAndDefaults) {
  const auto dir = sagitta::testing::scratch_dir();
  std::ofstream(dir / "model.json") << R"({"name": "demo", "labels": [
      {"value": 0, "name": "background"},
      {"value": 1, "name": "liver", "color": [255, 128, 0]},
      {"value": 2, "name": "spleen"}]})";
  const auto t = sv::LabelTable::from_model_card(dir / "model.json", 3);
  ASSERT_TRUE(t.find(1));
  EXPECT_EQ(t.find(1)->name, "liver");
  EXPECT_NEAR(t.find(1)->color[1], 128 / 255.0, 1e-9);
  EXPECT_EQ(t.find(2)->name, "spleen");
  EXPECT_EQ(t.find(2)->color, sv::default_label_color(2));
  EXPECT_EQ(t.find(3)->name, "label 3");
  EXPECT_FALSE(t.find(0));
  std::ofstream(dir / "bad.json") << R"({"labels": [{"value": 1, "color": [1, 2]}]})";
  EXPECT_THROW(sv::LabelTable::from_model_card(dir / "bad.json", 1), sv::ViewerError);
  // Default colours are distinct for the first labels.
  for (int a = 1; a <= 20; ++a)
    for (int b = a + 1; b <= 20; ++b) EXPECT_NE(sv::default_label_color(a), sv::default_label_color(b));
}

TEST(Scene, RefusesOverlaysOffTheGridAndFindsTheLabels) {
  svt::Grid g;
  g = g.centred();
  auto volume = svt::make_volume(g, {});
  auto labels = svt::make_labels(g, {{2, {{10, -5, 8}, {4, 4, 4}}}});
  sv::Scene scene(volume, labels, nullptr, "MR");
  EXPECT_EQ(scene.max_label(), 2);
  const auto f = scene.focus_point();
  EXPECT_NEAR(f[0], 10, 0.5);
  EXPECT_NEAR(f[1], -5, 0.5);
  EXPECT_NEAR(f[2], 8, 1.0);
  svt::Grid other = g;
  other.origin[0] += 1;
  EXPECT_THROW(sv::Scene(volume, svt::make_labels(other, {})), sv::ViewerError);
}

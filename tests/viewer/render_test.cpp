// Offscreen pictures under X/Xvfb: markers at known LPS points land on the expected pixels and
// sides (radiological convention), for an oblique volume too; golden pictures; `sagitta render`.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "phantom.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/viewer/display.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/offscreen_render.h"
#include "sagitta/viewer/scene.h"
#include "support/synthetic_dicom.h"
#include "support/test_paths.h"

namespace sv = sagitta::viewer;
namespace svt = sagitta::viewer::testing;

namespace {

bool white(int r, int g, int b) { return r > 200 && g > 200 && b > 200; }

// 64 x 64 x 40 voxels of 0.8 x 0.8 x 2 mm: 51.2 x 51.2 x 80 mm, centred on the origin, with a
// bright marker in the patient's left-anterior-superior octant.
struct MarkerPhantom {
  svt::Grid grid;
  sv::Vec3 marker{12, -9, 14};  // left 12, anterior 9, superior 14
  sv::Image::Pointer volume;
  MarkerPhantom() {
    grid = grid.centred();
    volume = svt::make_volume(grid, {{marker, {2.5, 2.5, 3}, 1000}});
  }
  std::unique_ptr<sv::Scene> scene() const {
    auto s = std::make_unique<sv::Scene>(volume, nullptr, nullptr, "MR");
    s->display.window = {1000, 500, "custom"};
    s->display.annotations = false;
    return s;
  }
};

// Extent (mm, pixel edges) of the volume along a patient axis and its centre.
struct Extent {
  double centre, length;
};
Extent extent(const svt::Grid& g, int axis) {
  const double len = g.size[std::size_t(axis)] * g.spacing[std::size_t(axis)];
  const double centre = g.origin[std::size_t(axis)] + (g.size[std::size_t(axis)] - 1) * g.spacing[std::size_t(axis)] / 2;
  return {centre, len};
}

}  // namespace

class Render : public ::testing::Test {
protected:
  void SetUp() override {
    if (!sv::display_available()) GTEST_SKIP() << "no X display; render tests run under xvfb-run -a";
  }
};

TEST_F(Render, AxialMarkerOnThePatientsLeftShowsOnTheImageRightAndAnteriorUp) {
  MarkerPhantom ph;
  auto scene = ph.scene();
  sv::RenderRequest r;
  r.layout = sv::Layout::Axial;
  r.focus = ph.marker;
  r.width = r.height = 256;
  auto picture = sv::render_image(*scene, r);
  const auto c = svt::centroid(picture, white);
  ASSERT_GT(c.pixels, 20u) << "marker not visible";
  // 51.2 mm fill 256 pixels: 5 pixels per mm, centred on the volume's centre.
  const double ppm = 256 / 51.2;
  const auto ex = extent(ph.grid, 0), ey = extent(ph.grid, 1);
  EXPECT_NEAR(c.x, 127.5 + (ph.marker[0] - ex.centre) * ppm, 2.0);
  EXPECT_NEAR(c.y, 127.5 + (-(ph.marker[1] - ey.centre)) * ppm, 2.0);  // anterior (-y) is up
  EXPECT_GT(c.x, 128) << "patient left must be on the image's right";
  EXPECT_GT(c.y, 128) << "anterior must be up";
}

TEST_F(Render, CoronalAndSagittalPutTheMarkerWhereThePatientIs) {
  MarkerPhantom ph;
  auto scene = ph.scene();
  sv::RenderRequest r;
  r.focus = ph.marker;
  r.width = r.height = 256;
  const double ppm = 256 / 80.0;  // the 80 mm superior-inferior extent fills the height
  const auto ex = extent(ph.grid, 0), ey = extent(ph.grid, 1), ez = extent(ph.grid, 2);

  r.layout = sv::Layout::Coronal;
  auto coronal = svt::centroid(sv::render_image(*scene, r), white);
  ASSERT_GT(coronal.pixels, 10u);
  EXPECT_NEAR(coronal.x, 127.5 + (ph.marker[0] - ex.centre) * ppm, 2.0);
  EXPECT_NEAR(coronal.y, 127.5 + (ph.marker[2] - ez.centre) * ppm, 2.0);
  EXPECT_GT(coronal.x, 128) << "coronal: patient left on the image's right";
  EXPECT_GT(coronal.y, 128) << "coronal: superior up";

  r.layout = sv::Layout::Sagittal;
  auto sagittal = svt::centroid(sv::render_image(*scene, r), white);
  ASSERT_GT(sagittal.pixels, 10u);
  EXPECT_NEAR(sagittal.x, 127.5 + (ph.marker[1] - ey.centre) * ppm, 2.0);
  EXPECT_NEAR(sagittal.y, 127.5 + (ph.marker[2] - ez.centre) * ppm, 2.0);
  EXPECT_LT(sagittal.x, 128) << "sagittal: anterior on the image's left";
}

TEST_F(Render, ObliqueVolumeShowsMarkersAtTheirPatientPositions) {
  // 1 mm voxels rotated 30 degrees about the patient's S axis and tilted 20 degrees about L.
  svt::Grid g;
  g.size = {60, 60, 40};
  g.spacing = {1, 1, 1};
  g.direction = svt::oblique_direction(30, 20);
  g = g.centred();
  const sv::Vec3 left_anterior{13, -10, 2}, right_posterior{-11, 8, 2};
  // The markers are labels (nearest-neighbour reslicing keeps their edges crisp): 1 red, 2 green.
  auto volume = svt::make_volume(g, {{{0, 0, 0}, {20, 20, 15}, 100}});
  auto labels = svt::make_labels(g, {{1, {left_anterior, {4, 4, 4}}}, {2, {right_posterior, {4, 4, 4}}}});
  sv::Scene scene(volume, labels, nullptr, "MR");
  scene.display.window = {1000, 500, "custom"};
  scene.display.annotations = false;
  scene.label_table[1].opacity = scene.label_table[2].opacity = 1.0;
  sv::RenderRequest r;
  r.layout = sv::Layout::Axial;
  r.focus = left_anterior;
  r.width = r.height = 256;
  auto picture = sv::render_image(scene, r);

  // The view fits the bounding box of the rotated volume's voxel centres (1 mm pixels).
  double lo[2] = {1e9, 1e9}, hi[2] = {-1e9, -1e9};
  for (int corner = 0; corner < 8; ++corner) {
    itk::Point<double, 3> p;
    volume->TransformIndexToPhysicalPoint({{corner & 1 ? 59 : 0, corner & 2 ? 59 : 0, corner & 4 ? 39 : 0}}, p);
    const double uv[2] = {p[0], -p[1]};
    for (int a = 0; a < 2; ++a) {
      lo[a] = std::min(lo[a], uv[a]);
      hi[a] = std::max(hi[a], uv[a]);
    }
  }
  const double span = std::max(hi[0] - lo[0], hi[1] - lo[1]) + 1;
  const double ppm = 256 / span;
  auto bright = svt::centroid(picture, [](int rr, int gg, int bb) { return rr > 200 && gg < 60 && bb < 60; });
  auto grey = svt::centroid(picture, [](int rr, int gg, int bb) { return gg > 150 && rr < 60 && bb < 100; });
  ASSERT_GT(bright.pixels, 10u);
  ASSERT_GT(grey.pixels, 10u);
  EXPECT_NEAR(bright.x, 127.5 + (left_anterior[0] - (lo[0] + hi[0]) / 2) * ppm, 3.0);
  EXPECT_NEAR(bright.y, 127.5 + (-left_anterior[1] - (lo[1] + hi[1]) / 2) * ppm, 3.0);
  EXPECT_NEAR(grey.x, 127.5 + (right_posterior[0] - (lo[0] + hi[0]) / 2) * ppm, 3.0);
  EXPECT_NEAR(grey.y, 127.5 + (-right_posterior[1] - (lo[1] + hi[1]) / 2) * ppm, 3.0);
  EXPECT_GT(bright.x, grey.x + 20) << "patient left to the right";
  EXPECT_GT(bright.y, grey.y + 20) << "anterior up";
  // Round, not sheared: the blob is as wide as it is tall.
  EXPECT_NEAR(double(bright.pixels), M_PI * std::pow(4 * ppm, 2), 0.2 * M_PI * std::pow(4 * ppm, 2));
}

namespace {

// The report phantom: CT-like body with two labelled organs and a heatmap on a lesion.
struct ReportPhantom {
  svt::Grid grid;
  std::unique_ptr<sv::Scene> scene;
  ReportPhantom() {
    grid.size = {80, 80, 40};
    grid.spacing = {0.6, 0.6, 1.5};
    grid = grid.centred();
    auto volume = svt::make_volume(grid,
                                   {{{0, 0, 0}, {22, 18, 40}, 40},
                                    {{-9, 2, 0}, {7, 7, 12}, 60},
                                    {{10, -4, 4}, {5, 5, 6}, 90},
                                    {{0, 12, 0}, {3, 3, 40}, 700}},
                                   -1000);
    auto labels = svt::make_labels(grid, {{1, {{-9, 2, 0}, {7, 7, 12}}}, {2, {{10, -4, 4}, {5, 5, 6}}}});
    auto heat = svt::make_volume(grid, {{{10, -4, 4}, {8, 8, 8}, 0.6f}, {{10, -4, 4}, {4, 4, 4}, 1.0f}});
    scene = std::make_unique<sv::Scene>(volume, labels, heat, "CT");
    scene->label_table[1].name = "liver";
    scene->label_table[2].name = "lesion";
  }
};

}  // namespace

TEST_F(Render, GoldenAxialWithOverlaysAndAnnotations) {
  ReportPhantom ph;
  sv::RenderRequest r;
  r.layout = sv::Layout::Axial;
  r.width = r.height = 200;
  r.focus = sv::Vec3{0, 0, 4};
  auto picture = sv::render_image(*ph.scene, r);
  EXPECT_EQ(svt::compare_golden(picture, "axial_overlays"), "");
  // The lesion label (2, blue) lies on the patient's left: right half of the picture.
  const auto lesion = svt::centroid(picture, [](int rr, int gg, int bb) { return gg > rr + 40 && gg > bb + 40; });
  ASSERT_GT(lesion.pixels, 20u);
  EXPECT_GT(lesion.x, 100);
  ph.scene->display.label_outline = true;
  ph.scene->display.heatmap.visible = false;
  EXPECT_EQ(svt::compare_golden(sv::render_image(*ph.scene, r), "axial_outline"), "");
}

TEST_F(Render, GoldenGridAndMontage) {
  ReportPhantom ph;
  sv::RenderRequest r;
  r.layout = sv::Layout::Grid;
  r.width = r.height = 320;
  auto grid = sv::render_image(*ph.scene, r);
  EXPECT_EQ(svt::compare_golden(grid, "grid"), "");
  // The 3D quadrant (bottom right) shows the surfaces: label colours present there.
  const auto red = svt::centroid(grid, [](int rr, int gg, int bb) { return rr > gg + 60 && rr > bb + 60; }, 160, 0, 320, 160);
  EXPECT_GT(red.pixels, 50u);
  r.layout = sv::Layout::Montage;
  r.montage_count = 4;
  r.width = r.height = 240;
  EXPECT_EQ(svt::compare_golden(sv::render_image(*ph.scene, r), "montage"), "");
}

TEST_F(Render, RenderingIsDeterministic) {
  ReportPhantom ph;
  sv::RenderRequest r;
  r.layout = sv::Layout::Coronal;
  r.width = r.height = 160;
  auto a = sv::render_image(*ph.scene, r), b = sv::render_image(*ph.scene, r);
  EXPECT_EQ(svt::compare_golden(a, "coronal_overlays"), "");
  const auto* pa = static_cast<unsigned char*>(a->GetScalarPointer());
  const auto* pb = static_cast<unsigned char*>(b->GetScalarPointer());
  EXPECT_TRUE(std::equal(pa, pa + 160 * 160 * 3, pb));
}

TEST_F(Render, CommandRendersADicomFolderAndRefusesMismatchedLabels) {
  const auto dir = sagitta::testing::scratch_dir();
  sagitta::testing::SeriesSpec spec;
  spec.rows = spec.columns = 48;
  spec.slices = 20;
  spec.pixel_spacing = {1.0, 1.0};
  spec.slice_spacing = 2.0;
  spec.first_position = {-24, -24, -20};
  spec.background = -1000;
  // A marker on the patient's right (x < 0), posterior (y > 0).
  spec.markers.push_back({{-12, 10, 0}, 3.0, 1000});
  sagitta::testing::write_series(spec, dir / "dicom");
  const auto bin = sagitta::testing::sagitta_executable().string();
  auto r = sagitta::testing::run_command(bin + " render " + (dir / "dicom").string() +
                                         " --view axial --slice 10 --preset bone --size 192x192 --no-annotations -o " +
                                         (dir / "axial.png").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto picture = svt::read_png(dir / "axial.png");
  int dims[3];
  picture->GetDimensions(dims);
  EXPECT_EQ(dims[0], 192);
  const auto c = svt::centroid(picture, [](int rr, int, int) { return rr > 150; });
  ASSERT_GT(c.pixels, 10u);
  EXPECT_LT(c.x, 96) << "patient right on the image's left";
  EXPECT_LT(c.y, 96) << "posterior down";
  EXPECT_NEAR(c.x, 95.5 + (-12 - (-0.5)) * 4, 2.5);  // 48 mm on 192 pixels; centre x = -0.5
  EXPECT_NEAR(c.y, 95.5 + (-10 - 0.5) * 4, 2.5);      // up = -y; centre y = -0.5

  // A label map on another grid: refused with exit 3 and one line naming the option; no output.
  svt::Grid other;
  other.size = {10, 10, 10};
  other = other.centred();
  sagitta::write_volumes({svt::make_volume(other, {})}, dir / "labels.nrrd", {});
  r = sagitta::testing::run_command(bin + " render " + (dir / "dicom").string() + " --labels " +
                                    (dir / "labels.nrrd").string() + " -o " + (dir / "bad.png").string());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("--resample-overlays"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "bad.png"));
  r = sagitta::testing::run_command(bin + " render " + (dir / "dicom").string() + " --labels " +
                                    (dir / "labels.nrrd").string() + " --resample-overlays --view grid -o " +
                                    (dir / "grid.png").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = sagitta::testing::run_command(bin + " render " + (dir / "dicom").string() + " --slice 99 -o " +
                                    (dir / "far.png").string());
  EXPECT_EQ(r.exit_code, 3) << r.err;
}

TEST(RenderWithoutDisplay, ViewAndRenderSayWhatToDo) {
  const auto dir = sagitta::testing::scratch_dir();
  svt::Grid g;
  g = g.centred();
  sagitta::write_volumes({svt::make_volume(g, {})}, dir / "v.nrrd", {});
  const auto bin = sagitta::testing::sagitta_executable().string();
  auto r = sagitta::testing::run_command("env -u DISPLAY " + bin + " view " + (dir / "v.nrrd").string());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("xvfb-run"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sagitta render"), std::string::npos) << r.err;
  r = sagitta::testing::run_command("DISPLAY=:9999 " + bin + " render " + (dir / "v.nrrd").string() + " -o " +
                                    (dir / "x.png").string());
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("xvfb-run"), std::string::npos) << r.err;
}

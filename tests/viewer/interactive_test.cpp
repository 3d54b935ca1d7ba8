// The interactive viewer driven by VTK interactor events: clicks move the crosshair, the wheel
// scrolls, keys change the window and overlays, and the screenshot shows it all.
#include <gtest/gtest.h>
#include <vtkCommand.h>
#include <vtkImageData.h>
#include <vtkRenderWindowInteractor.h>

#include <cmath>

#include "phantom.h"
#include "sagitta/viewer/display.h"
#include "sagitta/viewer/interactive_viewer.h"
#include "support/test_paths.h"

namespace sv = sagitta::viewer;
namespace svt = sagitta::viewer::testing;

namespace {

bool crosshair_colour(int r, int g, int b) {
  return std::abs(r - 255) < 30 && std::abs(g - int(0.85 * 255)) < 30 && b < 60;
}

void click(vtkRenderWindowInteractor* i, int x, int y) {
  i->SetEventInformation(x, y, 0, 0);
  i->InvokeEvent(vtkCommand::LeftButtonPressEvent);
  i->InvokeEvent(vtkCommand::LeftButtonReleaseEvent);
}

void wheel(vtkRenderWindowInteractor* i, int x, int y, int steps) {
  i->SetEventInformation(x, y, 0, 0);
  for (int s = 0; s < std::abs(steps); ++s)
    i->InvokeEvent(steps > 0 ? vtkCommand::MouseWheelForwardEvent : vtkCommand::MouseWheelBackwardEvent);
}

void key(vtkRenderWindowInteractor* i, char code, const char* sym) {
  i->SetKeyEventInformation(0, 0, code, 1, sym);
  i->InvokeEvent(vtkCommand::KeyPressEvent);
  i->InvokeEvent(vtkCommand::CharEvent);
}

}  // namespace

TEST(InteractiveViewer, ClicksScrollsAndKeysChangeWhatIsShown) {
  if (!sv::display_available()) GTEST_SKIP() << "no X display; render tests run under xvfb-run -a";
  // 64 x 64 x 40 voxels (0.8 x 0.8 x 2 mm), a marker at LPS (12, -9, 14) labelled 1.
  svt::Grid g;
  g = g.centred();
  const sv::Vec3 marker{12, -9, 14};
  auto volume = svt::make_volume(g, {{marker, {3, 3, 3}, 1000}});
  auto labels = svt::make_labels(g, {{1, {{-10, 8, -6}, {5, 5, 5}}}});
  sv::Scene scene(volume, labels, nullptr, "MR");
  scene.display.window = {1000, 500, "custom"};
  scene.display.annotations = false;
  sv::ViewerOptions o;
  o.width = o.height = 512;
  o.offscreen = true;
  o.screenshot_folder = sagitta::testing::scratch_dir();
  sv::InteractiveViewer viewer(scene, o);
  auto* in = viewer.interactor();

  // Starts at the labels' centroid.
  EXPECT_NEAR(viewer.crosshair()[0], -10, 0.5);
  auto& axial = viewer.view(sv::Orientation::Axial);
  auto& coronal = viewer.view(sv::Orientation::Coronal);

  // Axial view: top-left quadrant, 256 pixels for 51.2 mm (5 px/mm). Click where the marker is:
  // x = 12 mm left of centre 0 -> 128 + 60; y = 9 mm anterior -> 256 + 128 + 45.
  const int cx = int(std::lround(127.5 + 12 * 5)), cy = int(std::lround(256 + 127.5 + 9 * 5));
  click(in, cx, cy);
  EXPECT_NEAR(viewer.crosshair()[0], 12, 0.3);
  EXPECT_NEAR(viewer.crosshair()[1], -9, 0.3);
  // The coronal and sagittal views moved to the clicked point.
  EXPECT_EQ(coronal.slice(), coronal.grid().slice_of(marker));

  auto shot = viewer.screenshot();
  // The crosshair in the axial view passes through the click: a vertical and a horizontal line.
  const auto vertical = svt::centroid(shot, crosshair_colour, cx - 3, 260, cx + 4, 510);
  EXPECT_GT(vertical.pixels, 150u);
  EXPECT_NEAR(vertical.x, cx, 1.5);
  const auto horizontal = svt::centroid(shot, crosshair_colour, 2, cy - 3, 254, cy + 4);
  EXPECT_GT(horizontal.pixels, 150u);
  EXPECT_NEAR(horizontal.y, cy, 1.5);
  // The coronal view (top right) has its vertical line at the same patient x.
  const auto coronal_line = svt::centroid(shot, crosshair_colour, 256 + 128 + int(12 * 3.2) - 4, 260,
                                          256 + 128 + int(12 * 3.2) + 5, 510);
  EXPECT_GT(coronal_line.pixels, 150u);

  // The axial slice is still at the labels' centroid (z = -6): the marker (z = 14) is not shown.
  const auto before = svt::centroid(shot, [](int r, int gg, int b) { return r > 200 && gg > 200 && b > 200; }, 0, 256, 256, 512);
  EXPECT_EQ(before.pixels, 0u);
  // Scroll up 10 slices of 2 mm: z = -6 + 20 = 14, the marker's slice.
  const int slice0 = axial.slice();
  wheel(in, 100, 300, 10);
  EXPECT_EQ(axial.slice(), slice0 + 10);
  EXPECT_NEAR(viewer.crosshair()[2], 14, 1.01);
  shot = viewer.screenshot();
  const auto after = svt::centroid(shot, [](int r, int gg, int b) { return r > 200 && gg > 200 && b > 200; }, 0, 256, 256, 512);
  EXPECT_GT(after.pixels, 50u) << "the marker should appear after scrolling to its slice";
  EXPECT_NEAR(after.x, cx, 3);
  // In the coronal view the horizontal crosshair line moved up by 20 mm (3.2 px/mm).
  const int coronal_y = int(std::lround(256 + 127.5 + (viewer.crosshair()[2] - g.origin[2] - 39) * 3.2));
  const auto moved = svt::centroid(shot, crosshair_colour, 258, coronal_y - 3, 510, coronal_y + 4);
  EXPECT_GT(moved.pixels, 100u);

  // Keys: 4 = bone window, l hides the labels, s writes a screenshot.
  key(in, '4', "4");
  EXPECT_EQ(scene.display.window.name, "bone");
  EXPECT_TRUE(scene.display.labels_visible);
  key(in, 'l', "l");
  EXPECT_FALSE(scene.display.labels_visible);
  key(in, 's', "s");
  const auto png = o.screenshot_folder / "sagitta-screenshot-1.png";
  ASSERT_TRUE(std::filesystem::exists(png));
  auto saved = svt::read_png(png);
  int dims[3];
  saved->GetDimensions(dims);
  EXPECT_EQ(dims[0], 512);
  EXPECT_EQ(dims[1], 512);

  // Right drag changes the window; Ctrl+wheel zooms the axial view.
  const double window_before = scene.display.window.window;
  in->SetEventInformation(100, 300, 0, 0);
  in->InvokeEvent(vtkCommand::RightButtonPressEvent);
  in->SetEventInformation(160, 300, 0, 0);
  in->InvokeEvent(vtkCommand::MouseMoveEvent);
  in->InvokeEvent(vtkCommand::RightButtonReleaseEvent);
  EXPECT_GT(scene.display.window.window, window_before);
  const double mm_before = axial.mm_per_pixel();
  in->SetEventInformation(100, 300, 1, 0);
  in->InvokeEvent(vtkCommand::MouseWheelForwardEvent);
  EXPECT_LT(axial.mm_per_pixel(), mm_before);
}

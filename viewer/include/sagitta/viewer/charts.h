#pragma once
// Simple 2D charts (points, lines, bars) rendered offscreen with VTK's charts (vtkChartXY in a
// vtkContextView) into PNGs for reports. Needs an X display like every VTK render here (Xvfb
// works): without one, render_chart throws ViewerError naming Xvfb.
#include <array>
#include <filesystem>
#include <string>
#include <vector>

#include <vtkImageData.h>
#include <vtkSmartPointer.h>

namespace sagitta::viewer {

struct ChartSeries {
  enum class Kind { Points, Line, Bars };
  std::string name;              // legend entry
  std::vector<double> x, y;      // same length
  std::array<unsigned char, 3> colour{76, 114, 176};
  Kind kind = Kind::Points;
};

struct ChartRequest {
  std::string title, x_label, y_label;
  std::vector<ChartSeries> series;
  int width = 640, height = 400;  // pixels, 16..8192
};

// An RGB image of the chart (row 0 at the bottom, as VTK stores images). Axes: fixed ranges around
// the data (x +-0.6, meant for indices; y with headroom for the legend; bars from 0).
vtkSmartPointer<vtkImageData> render_chart(const ChartRequest& request);
// The chart as PNG bytes (written through a temporary file, removed again).
std::string render_chart_png(const ChartRequest& request);

}  // namespace sagitta::viewer

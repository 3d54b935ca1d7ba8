// Offscreen 2D charts with VTK's vtkChartXY (declarations: sagitta/viewer/charts.h).
#include "sagitta/viewer/charts.h"

#include <vtkAxis.h>
#include <vtkChartLegend.h>
#include <vtkChartXY.h>
#include <vtkContextScene.h>
#include <vtkContextView.h>
#include <vtkDoubleArray.h>
#include <vtkNew.h>
#include <vtkPNGWriter.h>
#include <vtkPlot.h>
#include <vtkPlotPoints.h>
#include <vtkRenderWindow.h>
#include <vtkRenderer.h>
#include <vtkTable.h>
#include <vtkTextProperty.h>
#include <vtkUnsignedCharArray.h>

#include <algorithm>
#include <cmath>



#include "sagitta/viewer/display.h"
#include "sagitta/viewer/error.h"
#include "sagitta/viewer/offscreen_render.h"

namespace sagitta::viewer {

vtkSmartPointer<vtkImageData> render_chart(const ChartRequest& r) {
  if (r.width < 16 || r.height < 16 || r.width > 8192 || r.height > 8192)
    throw ViewerError("chart size must be within 16..8192 pixels");
  require_display("charts are rendered with VTK");
  vtkNew<vtkContextView> view;
  vtkRenderWindow* window = view->GetRenderWindow();
  window->SetDisplayId(shared_display());
  window->SetOffScreenRendering(1);
  window->SetMultiSamples(0);  // deterministic pictures
  window->SetSize(r.width, r.height);
  window->SetBorders(0);
  view->GetRenderer()->SetBackground(1, 1, 1);

  vtkNew<vtkChartXY> chart;
  view->GetScene()->AddItem(chart);
  chart->SetTitle(r.title);
  chart->GetTitleProperties()->SetFontSize(14);
  chart->GetAxis(vtkAxis::BOTTOM)->SetTitle(r.x_label);
  chart->GetAxis(vtkAxis::LEFT)->SetTitle(r.y_label);
  chart->SetShowLegend(r.series.size() > 1);
  chart->GetLegend()->SetHorizontalAlignment(vtkChartLegend::RIGHT);
  chart->GetLegend()->SetVerticalAlignment(vtkChartLegend::TOP);
  for (const auto& s : r.series) {
    if (s.x.size() != s.y.size()) throw ViewerError("chart series '" + s.name + "': x and y differ in length");
    vtkNew<vtkTable> table;
    vtkNew<vtkDoubleArray> x, y;
    x->SetName("x");
    y->SetName(s.name.empty() ? "y" : s.name.c_str());
    table->AddColumn(x);
    table->AddColumn(y);
    table->SetNumberOfRows(vtkIdType(s.x.size()));
    for (std::size_t k = 0; k < s.x.size(); ++k) {
      table->SetValue(vtkIdType(k), 0, s.x[k]);
      table->SetValue(vtkIdType(k), 1, s.y[k]);
    }
    const int kind = s.kind == ChartSeries::Kind::Bars ? vtkChart::BAR : s.kind == ChartSeries::Kind::Line ? vtkChart::LINE : vtkChart::POINTS;
    vtkPlot* plot = chart->AddPlot(kind);
    plot->SetInputData(table, 0, 1);
    plot->SetColor(s.colour[0], s.colour[1], s.colour[2], 255);
    plot->SetLabel(s.name);
    plot->SetWidth(s.kind == ChartSeries::Kind::Line ? 2.0f : 1.0f);
    if (auto* points = vtkPlotPoints::SafeDownCast(plot)) {
      points->SetMarkerStyle(vtkPlotPoints::CIRCLE);
      points->SetMarkerSize(7);
    }
  }
  // Fixed ranges with headroom above the data: the legend sits in the top right corner and must
  // not hide points.
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  bool any = false;
  for (const auto& s : r.series)
    for (std::size_t k = 0; k < s.x.size(); ++k) {
      if (!std::isfinite(s.x[k]) || !std::isfinite(s.y[k])) continue;
      x0 = any ? std::min(x0, s.x[k]) : s.x[k];
      x1 = any ? std::max(x1, s.x[k]) : s.x[k];
      y0 = any ? std::min(y0, s.y[k]) : s.y[k];
      y1 = any ? std::max(y1, s.y[k]) : s.y[k];
      any = true;
    }
  if (any) {
    const bool bars = std::any_of(r.series.begin(), r.series.end(), [](const ChartSeries& s) { return s.kind == ChartSeries::Kind::Bars; });
    if (bars) y0 = std::min(y0, 0.0);
    const double dy = y1 > y0 ? y1 - y0 : std::max(1.0, std::abs(y0));
    chart->GetAxis(vtkAxis::LEFT)->SetBehavior(vtkAxis::FIXED);
    chart->GetAxis(vtkAxis::LEFT)->SetRange(bars ? y0 : y0 - 0.08 * dy, y1 + 0.35 * dy);
    chart->GetAxis(vtkAxis::BOTTOM)->SetBehavior(vtkAxis::FIXED);
    chart->GetAxis(vtkAxis::BOTTOM)->SetRange(x0 - 0.6, x1 + 0.6);
  }
  window->Render();
  return window_picture(window);
}

std::string render_chart_png(const ChartRequest& request) {
  auto image = render_chart(request);
  vtkNew<vtkPNGWriter> writer;
  writer->SetInputData(image);
  writer->WriteToMemoryOn();
  writer->Write();
  vtkUnsignedCharArray* bytes = writer->GetResult();
  if (writer->GetErrorCode() != 0 || !bytes || bytes->GetNumberOfValues() == 0) throw ViewerError("cannot encode the chart as PNG");
  return std::string(reinterpret_cast<const char*>(bytes->GetPointer(0)), std::size_t(bytes->GetNumberOfValues()));
}

}  // namespace sagitta::viewer

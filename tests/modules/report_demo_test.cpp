// `sagitta demo` with its defaults: the real 20-slice CT that ships in testdata/demo/ct_real and
// the demo model, ending with the study's HTML page, opened in Debian's headless Chromium. Label
// `slow` (45 s on 2 quiet cores, about 2 minutes on busy ones); needs X for the pictures (xvfb-run -a).
#include <gtest/gtest.h>

#include <cstdlib>

#include "report_chromium.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace st = sagitta::testing;
using namespace sagitta::testing::report;

TEST(ReportDemo, TheRealCtDemoEndsWithAReadablePage) {
  REQUIRE_CHROMIUM();
  if (!std::getenv("DISPLAY")) GTEST_SKIP() << "no X display: run under xvfb-run -a";
  const fs::path dir = st::scratch_dir();
  const fs::path out = dir / "demo";
  const auto r = st::run_command(fmt::format("'{}' demo -o '{}' --threads 2", st::sagitta_executable().string(), out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("open the report: " + (out / "report.html").string()), std::string::npos) << r.out;
  const json demo = read_json(out / "report.json");
  EXPECT_NE(demo["data"].get<std::string>().find("ct_real"), std::string::npos);
  const json seg = read_json(out / "segmentation" / "report.json");
  EXPECT_EQ(seg["geometry"]["size"], json({512, 512, 20}));

  const Rendered d = open_in_chromium(out / "report.html", dir, 1024);
  // Montage, the liver's heatmap from `sagitta explain`, 3D surfaces.
  EXPECT_EQ(d.images, 3);
  EXPECT_EQ(d.decoded, d.images);
  for (const auto& l : seg["labels"])
    if (l["value"] != 0 && l["voxels"].get<long>() > 0) {
      EXPECT_NE(d.dom.find(">" + two_decimals(l["volume_ml"]) + "<"), std::string::npos) << l.dump();
    }
  // The explain step's faithfulness number for the liver, as it wrote it.
  const json explained = read_json(out / "explain" / "report.json");
  const double area = explained["explanation"]["labels"][0]["deletion"]["area"];
  EXPECT_NE(d.dom.find(fmt::format(">{:.3f}<", area)), std::string::npos);
  EXPECT_GT(screenshot_spread(out / "report.html", dir, 1024, 1600), 20.0);
}

}  // namespace

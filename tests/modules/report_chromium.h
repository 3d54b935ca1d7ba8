#pragma once
// Opening Sagitta's HTML pages in Debian's headless Chromium for the report tests: the DOM after
// load with a probe's marks, and the spread of a screenshot's pixels read by Python's PIL.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include "support/test_paths.h"

namespace sagitta::testing::report {
namespace fs = std::filesystem;
namespace st = sagitta::testing;
using nlohmann::json;

inline bool have(const char* program) { return st::run_command(fmt::format("command -v {}", program)).exit_code == 0; }

#define REQUIRE_CHROMIUM()                                                                                  \
  if (!have("chromium")) GTEST_SKIP() << "chromium not installed (Debian package chromium; scripts/setup.sh)"; \
  if (st::run_command("/usr/bin/python3 -c 'import PIL'").exit_code != 0)                                   \
    GTEST_SKIP() << "Python's PIL not installed (Debian package python3-pil)"

inline std::string chromium(const std::string& args, const fs::path& profile) {
  return fmt::format("chromium --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars --user-data-dir='{}' {}",
                     profile.string(), args);
}

inline json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

// What Chromium saw after the page loaded: the DOM, with the marks a small script left on <body>.
struct Rendered {
  std::string dom;
  int images = -1, decoded = -1, scripts = -1, scroll_width = -1, inner_width = -1;
};

inline Rendered open_in_chromium(const fs::path& page, const fs::path& dir, int width) {
  // A copy of the page with a probe script before </body> (the page itself has no script).
  std::string html = st::read_file(page);
  const auto at = html.rfind("</body>");
  EXPECT_NE(at, std::string::npos);
  html.insert(at, "<script>window.addEventListener('load',()=>{const b=document.body;const im=[...document.images];"
                  "b.dataset.images=im.length;b.dataset.decoded=im.filter(i=>i.complete&&i.naturalWidth>0).length;"
                  "b.dataset.scripts=document.scripts.length;b.dataset.scrollWidth=document.documentElement.scrollWidth;"
                  "b.dataset.innerWidth=window.innerWidth;});</script>");
  const fs::path probe = dir / "probe.html";
  std::ofstream(probe) << html;
  const auto r = st::run_command(chromium(fmt::format("--window-size={},900 --virtual-time-budget=10000 --dump-dom '{}'", width,
                                                      probe.string()), dir / "profile"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  Rendered out;
  out.dom = r.out;
  const auto mark = [&](const char* name) {
    std::smatch m;
    const std::regex re(std::string("data-") + name + "=\"(\\d+)\"");
    return std::regex_search(out.dom, m, re) ? std::stoi(m[1]) : -1;
  };
  out.images = mark("images"), out.decoded = mark("decoded"), out.scripts = mark("scripts");
  out.scroll_width = mark("scroll-width"), out.inner_width = mark("inner-width");
  return out;
}

// Standard deviation of the screenshot's pixel values (all channels): 0 for a blank page.
inline double screenshot_spread(const fs::path& page, const fs::path& dir, int width, int height) {
  const fs::path png = dir / "shot.png";
  const auto r = st::run_command(chromium(fmt::format("--window-size={},{} --screenshot='{}' '{}'", width, height, png.string(),
                                                      page.string()), dir / "profile"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Python's PIL (Debian python3-pil) reads the PNG: the peer decodes what Chromium wrote.
  const auto stat = st::run_command(fmt::format(
      "/usr/bin/python3 -c \"import sys; from PIL import Image, ImageStat; im = Image.open(sys.argv[1]).convert('RGB'); "
      "print(im.size[0], max(ImageStat.Stat(im).stddev))\" '{}'", png.string()));
  EXPECT_EQ(stat.exit_code, 0) << stat.err;
  std::istringstream in(stat.out);
  int w = 0;
  double spread = -1;
  in >> w >> spread;
  EXPECT_EQ(w, width);
  return spread;
}

inline std::string two_decimals(const json& v) { return fmt::format("{:.2f}", v.get<double>()); }

}  // namespace sagitta::testing::report

// Whole-slide building blocks without a model: the pyramidal TIFF writer (read back by libtiff and
// by OpenSlide's own tool), shards and Slurm arrays, manifests, colour deconvolution, and slides
// that are not slides.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <sstream>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/wsi.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace wsi = sagitta::segmentation::wsi;
using sagitta::segmentation::SegmentationError;
using sagitta::testing::run_command;
using sagitta::testing::scratch_dir;

bool have_openslide_tools() { return run_command("command -v openslide-show-properties").exit_code == 0; }

std::string property(const std::string& properties, const std::string& name) {
  std::smatch m;
  const std::regex re(name + ": '([^']*)'");
  return std::regex_search(properties, m, re) ? m[1].str() : std::string();
}

// A label image with structure at every scale: quadrants of labels 1..3 on background, a 1-pixel
// line of 4 and a 2-pixel-wide band of 5.
std::vector<std::uint8_t> pattern(int w, int h) {
  std::vector<std::uint8_t> v(std::size_t(w) * h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      std::uint8_t l = std::uint8_t(1 + (x * 2 / w) + (y * 2 / h) % 2);
      if ((x / 37 + y / 53) % 3 == 0) l = 0;
      if (y == 301) l = 4;
      if (x == 400 || x == 401) l = 5;
      v[std::size_t(y) * w + x] = l;
    }
  return v;
}

TEST(WsiPyramidTiff, WritesLevelsThatLibtiffAndOpenSlideRead) {
  const fs::path dir = scratch_dir();
  const int w = 1000, h = 700;
  const auto labels = pattern(w, h);
  wsi::PyramidTiffOptions o;
  o.tile = 256;
  o.mpp = 0.5;
  o.palette = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 0}, {0, 255, 255}};
  o.description = "test mask";
  std::vector<std::pair<int, int>> sizes;
  {
    wsi::PyramidTiffWriter writer(dir / "mask.tiff", w, h, o);
    // Rows arrive in uneven chunks, as the stitcher pushes them.
    int y = 0;
    for (int chunk : {1, 95, 300, 4, 200, 100}) {
      writer.push_rows(&labels[std::size_t(y) * w], chunk, std::size_t(w));
      y += chunk;
    }
    ASSERT_EQ(y, h);
    sizes = writer.finish();
  }
  // 1000x700 -> 500x350 -> 250x175 (fits one 256 tile).
  ASSERT_EQ(sizes.size(), 3u);
  EXPECT_EQ(sizes[1], std::make_pair(500, 350));
  EXPECT_EQ(sizes[2], std::make_pair(250, 175));
  EXPECT_FALSE(fs::exists(dir / "mask.tiff.level1"));  // temporary levels are gone

  const auto level0 = wsi::read_label_mask(dir / "mask.tiff", 0);
  ASSERT_EQ(level0.width, w);
  ASSERT_EQ(level0.height, h);
  EXPECT_EQ(level0.labels, labels);
  // Level 1: each pixel is the majority of its 2x2 block; the 2-pixel band survives exactly.
  const auto level1 = wsi::read_label_mask(dir / "mask.tiff", 1);
  ASSERT_EQ(level1.width, 500);
  for (int y = 0; y < 350; ++y) ASSERT_EQ(level1.labels[std::size_t(y) * 500 + 200], 5) << y;
  for (int y = 0; y < 350; ++y)
    for (int x = 0; x < 500; ++x) {
      const std::uint8_t v = level1.labels[std::size_t(y) * 500 + x];
      const std::uint8_t a = labels[std::size_t(2 * y) * w + 2 * x], b = labels[std::size_t(2 * y) * w + 2 * x + 1],
                         c = labels[std::size_t(2 * y + 1) * w + 2 * x], d = labels[std::size_t(2 * y + 1) * w + 2 * x + 1];
      ASSERT_TRUE(v == a || v == b || v == c || v == d) << x << "," << y;  // never a value that was not there
    }

  if (!have_openslide_tools()) GTEST_SKIP() << "openslide-tools not installed (apt-get install openslide-tools)";
  const auto r = run_command("openslide-show-properties '" + (dir / "mask.tiff").string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(property(r.out, "openslide.vendor"), "generic-tiff");
  EXPECT_EQ(property(r.out, "openslide.level-count"), "3");
  EXPECT_EQ(property(r.out, "openslide.level\\[0\\].width"), "1000");
  EXPECT_EQ(property(r.out, "openslide.level\\[0\\].height"), "700");
  EXPECT_EQ(property(r.out, "openslide.level\\[2\\].width"), "250");
  EXPECT_EQ(property(r.out, "tiff.ResolutionUnit"), "centimeter");
  EXPECT_NEAR(1e4 / std::stod(property(r.out, "tiff.XResolution")), 0.5, 1e-4);
}

TEST(WsiPyramidTiff, UnfinishedWriterLeavesNothing) {
  const fs::path dir = scratch_dir();
  {
    wsi::PyramidTiffWriter writer(dir / "mask.tiff", 600, 600, {});
    std::vector<std::uint8_t> row(600, 1);
    writer.push_rows(row.data(), 1, 600);
    EXPECT_THROW(writer.finish(), SegmentationError);
  }
  EXPECT_TRUE(fs::is_empty(dir));
}

// Lists, shards and Slurm arrays of a batch: tests/modules/batch_test.cpp (the shared runner).

TEST(WsiStains, DeconvolutionSeparatesHaematoxylinFromEosin) {
  // Typical haematoxylin (blue-purple) and eosin (pink) pixels, and glass.
  wsi::RgbImage img{3, 1, {70, 60, 150, 230, 130, 190, 245, 245, 245}};
  const auto s = wsi::deconvolve_he(img);
  EXPECT_GT(s.haematoxylin[0], 0.4);
  EXPECT_GT(s.haematoxylin[0], 2 * s.eosin[0]);
  EXPECT_GT(s.eosin[1], s.haematoxylin[1]);
  EXPECT_LT(std::abs(s.haematoxylin[2]), 0.05);
  // Pseudo-labels on a 9x9 image: a 5x5 nucleus in tissue, glass around... and a 1-pixel speck.
  wsi::RgbImage patch{9, 9, {}};
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 9; ++x) {
      std::array<std::uint8_t, 3> c{230, 130, 190};                       // eosin tissue
      if (x >= 2 && x <= 6 && y >= 2 && y <= 6) c = {70, 60, 150};        // nucleus
      if (x == 8 && y == 0) c = {245, 245, 245};                          // glass
      patch.pixels.insert(patch.pixels.end(), c.begin(), c.end());
    }
  const auto labels = wsi::he_pseudo_labels(patch);
  EXPECT_EQ(labels[4 * 9 + 4], 2);
  EXPECT_EQ(labels[0], 1);
  EXPECT_EQ(labels[8], 0);
}

TEST(WsiSlide, NotASlideGivesOneClearLine) {
  const fs::path dir = scratch_dir();
  try {
    wsi::Slide::open(dir / "absent.svs");
    FAIL() << "opened a missing file";
  } catch (const SegmentationError& e) {
    EXPECT_NE(std::string(e.what()).find("not found"), std::string::npos) << e.what();
  }
  std::ofstream(dir / "text.svs") << "not a slide\n";
  try {
    wsi::Slide::open(dir / "text.svs");
    FAIL() << "opened a text file";
  } catch (const SegmentationError& e) {
    EXPECT_NE(std::string(e.what()).find("not a whole-slide image"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  }
}

TEST(WsiSlide, RealBadInputs) {
  SAGITTA_REQUIRE_EXTERNAL(dir, "wsi/histolab");
  // broken.svs is a text file; kidney-48-5.tif is a plain striped TIFF, which is not a slide:
  // OpenSlide's generic reader needs tiles, and there is no pyramid to find tissue on.
  for (const char* name : {"broken.svs", "kidney-48-5.tif"}) {
    try {
      wsi::Slide::open(dir / name);
      FAIL() << name << " opened";
    } catch (const SegmentationError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(name), std::string::npos) << m;
      EXPECT_NE(m.find("not a whole-slide image"), std::string::npos) << m;
    }
  }
}

TEST(WsiSlide, RealSlidesLevelsAndResolution) {
  SAGITTA_REQUIRE_EXTERNAL(dir, "wsi/histolab");
  const auto cmu = wsi::Slide::open(dir / "cmu-1-small-region.svs");
  EXPECT_EQ(cmu.info().vendor, "aperio");
  ASSERT_EQ(cmu.info().levels.size(), 1u);
  EXPECT_EQ(cmu.info().levels[0].width, 2220);
  EXPECT_EQ(cmu.info().levels[0].height, 2967);
  ASSERT_TRUE(cmu.info().mpp_x);
  EXPECT_DOUBLE_EQ(*cmu.info().mpp_x, 0.499);
  ASSERT_TRUE(cmu.info().objective_power);
  EXPECT_DOUBLE_EQ(*cmu.info().objective_power, 20);
  const auto tcga = wsi::Slide::open(dir / "tcga-cr-7395-01a-01-ts1.svs");
  ASSERT_EQ(tcga.info().levels.size(), 2u);
  EXPECT_EQ(tcga.info().levels[1].width, 2221);
  EXPECT_FALSE(tcga.info().mpp_x);  // this file records no resolution
  EXPECT_EQ(tcga.best_level(3.0), 1);
  EXPECT_EQ(tcga.best_level(1.9), 0);
  // JPEG 2000 tiles decode; outside the slide is white.
  const auto region = tcga.read_region(1, 2200, 1000, 64, 8);
  EXPECT_EQ(region.pixels.size(), 64u * 8 * 3);
  EXPECT_EQ(region.pixels[(7 * 64 + 63) * 3], 255);

  const auto tissue = wsi::detect_tissue(cmu);
  EXPECT_EQ(tissue.height, 2048);  // the longer side fits the thumbnail size
  EXPECT_GT(tissue.tissue_fraction(), 0.2);
  EXPECT_LT(tissue.tissue_fraction(), 0.95);
  const fs::path out = scratch_dir() / "tissue.png";
  wsi::write_tissue_picture(tissue, out);
  EXPECT_GT(fs::file_size(out), 1000u);
}

}  // namespace

namespace {

// QuPath annotations of synthetic masks: shapely (an independent reader) finds valid polygons
// whose areas equal the mask's pixel areas at level 0.
TEST(WsiAnnotations, PolygonsMatchTheMaskInShapely) {
  const std::string python = [] {
    for (const char* p : {"/usr/bin/python3", "python3"})
      if (run_command(std::string(p) + " -c 'import shapely' 2>/dev/null").exit_code == 0) return std::string(p);
    return std::string();
  }();
  wsi::LabelMask mask;
  mask.width = 500;
  mask.height = 400;
  mask.labels = pattern(mask.width, mask.height);
  // A ring with an island in its hole (holes inside holes), in class 2.
  for (int y = 0; y < mask.height; ++y)
    for (int x = 0; x < mask.width; ++x) {
      const double r = std::hypot(x - 250.0, y - 150.0);
      if (r < 40) mask.labels[std::size_t(y) * mask.width + x] = r > 20 || r < 8 ? 2 : 0;
    }
  wsi::TissueMask tissue;
  tissue.width = 125;
  tissue.height = 100;
  tissue.downsample = 16;
  tissue.mask.assign(std::size_t(tissue.width) * tissue.height, 0);
  for (int y = 10; y < 90; ++y)
    for (int x = 10; x < 110; ++x)
      if (!(x > 50 && x < 70 && y > 40 && y < 60)) tissue.mask[std::size_t(y) * tissue.width + x] = 1;
  sagitta::ModelCard card;
  card.labels = {{0, "background", {0, 0, 0}, {}, {}, false}, {1, "tumour", {200, 0, 0}, {}, {}, true},
                 {2, "stroma", {0, 150, 0}, {}, {}, true}};
  const double downsample = 4;  // level-0 pixels per mask pixel
  const auto geojson = wsi::qupath_annotations(tissue, mask, downsample, card);
  const fs::path file = scratch_dir() / "annotations.geojson";
  std::ofstream(file) << geojson.dump();
  std::map<int, double> pixels;
  for (auto v : mask.labels) pixels[v] += 1;
  const double tissue_pixels = double(std::count(tissue.mask.begin(), tissue.mask.end(), std::uint8_t(1)));
  if (python.empty()) GTEST_SKIP() << "no python3 with shapely (Debian package python3-shapely)";
  const auto r = run_command(python + " " + sagitta::testing::shell_quote(sagitta::testing::source_dir() /
                                                                        "tests/segmentation/check_geojson_shapely.py") +
                             " " + sagitta::testing::shell_quote(file));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::map<std::string, double> area;
  std::istringstream lines(r.out);
  for (std::string w, name, color, polygons; lines >> w >> name >> w >> color >> w >> polygons >> w >> area[name];) {}
  const std::map<std::string, double> expected = {{"Tissue", tissue_pixels * 16 * 16},
                                                  {"tumour", pixels[1] * downsample * downsample},
                                                  {"stroma", pixels[2] * downsample * downsample},
                                                  {"class_3", pixels[3] * downsample * downsample},
                                                  {"class_4", pixels[4] * downsample * downsample},
                                                  {"class_5", pixels[5] * downsample * downsample}};
  for (const auto& [name, a] : expected) {
    ASSERT_TRUE(area.count(name)) << name << "\n" << r.out;
    const double agreement = std::min(a, area[name]) / std::max(a, area[name]);
    EXPECT_GE(agreement, 0.98) << name;
    EXPECT_NEAR(area[name], a, 1e-6 * a) << name;  // pixel-edge polygons: exact
  }
  EXPECT_NE(r.out.find("class tumour color 200,0,0"), std::string::npos) << r.out;
}

}  // namespace

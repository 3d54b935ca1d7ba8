// Streaming tiled pyramidal TIFF writer for label masks (libtiff).
//
// Level 0 goes straight into the output file; each downsampled level is fed from the level above
// as its rows arrive and written to its own temporary tiled TIFF (libtiff writes one directory at a
// time), then finish() appends those levels' compressed tiles unchanged (raw tile copy) as further
// directories. Each level keeps one row of tiles in memory, so memory does not grow with the slide.
#include <fmt/format.h>
#include <tiffio.h>

#include <algorithm>
#include <cstring>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/wsi.h"

namespace sagitta::segmentation::wsi {
namespace fs = std::filesystem;

namespace {

void check(int ok, const fs::path& path, const char* what) {
  if (!ok) throw SegmentationError(fmt::format("cannot write {}: {} failed (disk full?)", path.string(), what));
}

// Tags shared by every level: tiled, 8-bit palette, deflate, resolution in pixels per centimetre
// (the unit OpenSlide 4 and Bio-Formats/QuPath turn into micrometres per pixel).
void set_level_tags(TIFF* tif, const fs::path& path, int width, int height, int tile, double mpp, bool reduced,
                    const std::vector<std::array<int, 3>>& palette, const std::string& description) {
  check(TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, std::uint32_t(width)), path, "width tag");
  check(TIFFSetField(tif, TIFFTAG_IMAGELENGTH, std::uint32_t(height)), path, "height tag");
  check(TIFFSetField(tif, TIFFTAG_TILEWIDTH, std::uint32_t(tile)), path, "tile tag");
  check(TIFFSetField(tif, TIFFTAG_TILELENGTH, std::uint32_t(tile)), path, "tile tag");
  TIFFSetField(tif, TIFFTAG_SUBFILETYPE, reduced ? FILETYPE_REDUCEDIMAGE : 0);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE);
  // Palette: label value -> its card colour, so viewers show the classes while the pixel values
  // stay the label values for analysis.
  std::vector<std::uint16_t> r(256), g(256), b(256);
  for (int i = 0; i < 256; ++i) {
    std::array<int, 3> c{160, 160, 160};
    if (i < int(palette.size())) c = palette[std::size_t(i)];
    r[std::size_t(i)] = std::uint16_t(c[0] * 257), g[std::size_t(i)] = std::uint16_t(c[1] * 257),
    b[std::size_t(i)] = std::uint16_t(c[2] * 257);
  }
  TIFFSetField(tif, TIFFTAG_COLORMAP, r.data(), g.data(), b.data());
  if (mpp > 0) {
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, float(1e4 / mpp));
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, float(1e4 / mpp));
  }
  if (!description.empty()) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
  TIFFSetField(tif, TIFFTAG_SOFTWARE, "Sagitta");
}

struct LevelWriter {
  fs::path path;
  TIFF* tif = nullptr;
  int width = 0, height = 0, tile = 0;
  double mpp = 0;
  std::vector<std::uint8_t> rows;  // one row of tiles: tile x (tiles across * tile) labels
  int filled = 0, tile_row = 0, rows_done = 0;
  std::vector<std::uint8_t> pending;  // the even row waiting for its odd partner (downsampling)
  bool has_pending = false;
  LevelWriter* next = nullptr;

  int tiles_across() const { return (width + tile - 1) / tile; }
  int padded() const { return tiles_across() * tile; }

  void flush_tile_row() {
    std::vector<std::uint8_t> buf(std::size_t(tile) * tile);
    for (int tx = 0; tx < tiles_across(); ++tx) {
      for (int y = 0; y < tile; ++y)
        std::memcpy(&buf[std::size_t(y) * tile], &rows[std::size_t(y) * padded() + std::size_t(tx) * tile], std::size_t(tile));
      check(TIFFWriteTile(tif, buf.data(), std::uint32_t(tx * tile), std::uint32_t(tile_row * tile), 0, 0) >= 0, path,
            "writing a tile");
    }
    ++tile_row;
    filled = 0;
    std::fill(rows.begin(), rows.end(), std::uint8_t(0));
  }

  // The majority label of a 2x2 block (ties: the first in reading order), so thin structures
  // survive as long as they fill half a block and no value that was not there appears.
  static std::uint8_t majority(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    const std::uint8_t v[4] = {a, b, c, d};
    int best = 0, best_count = 0;
    for (int i = 0; i < 4; ++i) {
      int n = 0;
      for (int j = 0; j < 4; ++j) n += v[j] == v[i];
      if (n > best_count) best = i, best_count = n;
    }
    return v[best];
  }

  void push(const std::uint8_t* row) {
    std::memcpy(&rows[std::size_t(filled) * padded()], row, std::size_t(width));
    ++filled;
    ++rows_done;
    if (filled == tile || rows_done == height) flush_tile_row();
    if (!next) return;
    if (!has_pending) {
      pending.assign(row, row + width);
      has_pending = true;
      if (rows_done == height) emit_down(pending.data(), pending.data());  // odd height: last row alone
      return;
    }
    emit_down(pending.data(), row);
    has_pending = false;
  }

  void emit_down(const std::uint8_t* a, const std::uint8_t* b) {
    std::vector<std::uint8_t> out(std::size_t(next->width));
    for (int x = 0; x < next->width; ++x) {
      const int x0 = 2 * x, x1 = std::min(width - 1, 2 * x + 1);
      out[std::size_t(x)] = majority(a[x0], a[x1], b[x0], b[x1]);
    }
    next->push(out.data());
  }
};

}  // namespace

struct PyramidTiffWriter::Impl {
  fs::path path;
  PyramidTiffOptions options;
  std::vector<std::unique_ptr<LevelWriter>> levels;
  bool finished = false;

  ~Impl() {
    for (auto& l : levels)
      if (l->tif) TIFFClose(l->tif);
    // Unfinished (an error or a stop): nothing partial stays, the output file included.
    if (!finished)
      for (auto& l : levels) {
        std::error_code ec;
        fs::remove(l->path, ec);
      }
  }
};

PyramidTiffWriter::PyramidTiffWriter(const fs::path& path, int width, int height, const PyramidTiffOptions& options)
    : impl_(std::make_unique<Impl>()) {
  if (width < 1 || height < 1) throw SegmentationError("pyramidal TIFF: empty image");
  if (options.tile < 16 || options.tile % 16) throw SegmentationError("pyramidal TIFF: the tile size must be a multiple of 16");
  impl_->path = path;
  impl_->options = options;
  int w = width, h = height, l = 0;
  double mpp = options.mpp;
  while (true) {
    auto level = std::make_unique<LevelWriter>();
    level->width = w, level->height = h, level->tile = options.tile, level->mpp = mpp;
    level->path = l == 0 ? path : fs::path(path.string() + fmt::format(".level{}", l));
    // BigTIFF ("w8") only when the classic 4 GiB offsets could overflow.
    const bool big = double(w) * double(h) > 3.5e9;
    level->tif = TIFFOpen(level->path.c_str(), big ? "w8" : "w");
    if (!level->tif) throw SegmentationError("cannot create " + level->path.string());
    set_level_tags(level->tif, level->path, w, h, options.tile, mpp, l > 0, options.palette,
                   l == 0 ? options.description : std::string());
    level->rows.assign(std::size_t(options.tile) * std::size_t(level->padded()), 0);
    if (!impl_->levels.empty()) impl_->levels.back()->next = level.get();
    impl_->levels.push_back(std::move(level));
    if (w <= options.tile && h <= options.tile) break;
    w = (w + 1) / 2, h = (h + 1) / 2, mpp *= 2, ++l;
  }
}

PyramidTiffWriter::~PyramidTiffWriter() = default;

void PyramidTiffWriter::push_rows(const std::uint8_t* rows, int count, std::size_t stride) {
  LevelWriter& l0 = *impl_->levels.front();
  for (int i = 0; i < count; ++i) {
    if (l0.rows_done >= l0.height) throw SegmentationError("pyramidal TIFF: more rows than the image has");
    l0.push(rows + std::size_t(i) * stride);
  }
}

std::vector<std::pair<int, int>> PyramidTiffWriter::finish() {
  auto& levels = impl_->levels;
  for (auto& l : levels)
    if (l->rows_done != l->height)
      throw SegmentationError(fmt::format("pyramidal TIFF: {} of {} rows written", l->rows_done, l->height));
  TIFF* out = levels[0]->tif;
  check(TIFFWriteDirectory(out), impl_->path, "writing level 0");
  std::vector<std::pair<int, int>> sizes{{levels[0]->width, levels[0]->height}};
  std::vector<std::uint8_t> raw;
  for (std::size_t k = 1; k < levels.size(); ++k) {
    LevelWriter& l = *levels[k];
    TIFFClose(l.tif);  // flushes the level's file
    l.tif = TIFFOpen(l.path.c_str(), "r");
    if (!l.tif) throw SegmentationError("cannot reopen " + l.path.string());
    set_level_tags(out, impl_->path, l.width, l.height, l.tile, l.mpp, true, impl_->options.palette, "");
    const ttile_t tiles = TIFFNumberOfTiles(l.tif);
    for (ttile_t t = 0; t < tiles; ++t) {
      const tmsize_t size = tmsize_t(TIFFGetStrileByteCount(l.tif, std::uint32_t(t)));
      raw.resize(std::size_t(size));
      const tmsize_t got = TIFFReadRawTile(l.tif, std::uint32_t(t), raw.data(), size);
      check(got == size, l.path, "reading a tile back");
      check(TIFFWriteRawTile(out, std::uint32_t(t), raw.data(), size) == size, impl_->path, "copying a tile");
    }
    check(TIFFWriteDirectory(out), impl_->path, fmt::format("writing level {}", k).c_str());
    TIFFClose(l.tif);
    l.tif = nullptr;
    std::error_code ec;
    fs::remove(l.path, ec);
    sizes.emplace_back(l.width, l.height);
  }
  TIFFClose(out);
  levels[0]->tif = nullptr;
  impl_->finished = true;
  return sizes;
}

LabelMask read_label_mask(const fs::path& path, int level) {
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  if (!tif) throw SegmentationError("cannot open " + path.string() + " as TIFF");
  struct Closer {
    TIFF* t;
    ~Closer() { TIFFClose(t); }
  } closer{tif};
  if (!TIFFSetDirectory(tif, tdir_t(level))) throw SegmentationError(fmt::format("{} has no level {}", path.string(), level));
  std::uint32_t w = 0, h = 0, tw = 0, th = 0;
  std::uint16_t bits = 0, spp = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  if (!TIFFIsTiled(tif) || bits != 8 || spp != 1 || !TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw) ||
      !TIFFGetField(tif, TIFFTAG_TILELENGTH, &th))
    throw SegmentationError(path.string() + " is not a tiled 8-bit label mask");
  LabelMask m{int(w), int(h), std::vector<std::uint8_t>(std::size_t(w) * h)};
  std::vector<std::uint8_t> tile(TIFFTileSize(tif));
  for (std::uint32_t y = 0; y < h; y += th)
    for (std::uint32_t x = 0; x < w; x += tw) {
      if (TIFFReadTile(tif, tile.data(), x, y, 0, 0) < 0) throw SegmentationError("cannot read a tile of " + path.string());
      for (std::uint32_t ty = 0; ty < th && y + ty < h; ++ty)
        std::memcpy(&m.labels[std::size_t(y + ty) * w + x], &tile[std::size_t(ty) * tw], std::min(tw, w - x));
    }
  return m;
}

}  // namespace sagitta::segmentation::wsi

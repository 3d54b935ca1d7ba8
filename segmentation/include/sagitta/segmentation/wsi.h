#pragma once
// Whole-slide pathology segmentation: reading slides through OpenSlide, finding tissue on a
// low-resolution level, tiled inference with a 2D RGB model at the card's microns per pixel
// (Gaussian-blended overlapping windows, as the volume sliding window), streamed stitching into a
// tiled pyramidal TIFF label mask, per-slide summaries, and crash-safe sharded batches.
// No LibTorch here (the CLI and tests include this header); torch stays in wsi_inference.cpp and
// wsi_train.cpp.
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model.h"

namespace sagitta::segmentation::wsi {

// Thrown when a progress callback asked to stop: a batch ends at once instead of recording the
// slide as failed and going on.
class Stopped : public SegmentationError {
public:
  Stopped() : SegmentationError("stopped on request") {}
};

// ---- slides ----------------------------------------------------------------------------------

struct Level {
  std::int64_t width = 0, height = 0;  // pixels
  double downsample = 1;               // level-0 pixels per pixel of this level
};

struct SlideInfo {
  std::filesystem::path path;
  std::string vendor;                    // OpenSlide's format name (aperio, generic-tiff, ...)
  std::vector<Level> levels;             // level 0 is the full resolution
  std::optional<double> mpp_x, mpp_y;    // micrometres per level-0 pixel, when the file says
  std::optional<double> objective_power; // e.g. 20 (x)
};

// 8-bit RGB, interleaved, row-major.
struct RgbImage {
  int width = 0, height = 0;
  std::vector<std::uint8_t> pixels;  // width * height * 3
};

// An open slide. Reads are thread-safe (OpenSlide serialises what it must and caches tiles), so
// several threads may decode regions of one slide at once.
class Slide {
public:
  // Throws SegmentationError with one line naming the file and why it is not a slide (not found,
  // a format OpenSlide does not know, e.g. a plain striped TIFF, or a damaged file).
  static Slide open(const std::filesystem::path& path);
  Slide(Slide&&) noexcept;
  Slide& operator=(Slide&&) noexcept;
  ~Slide();

  const SlideInfo& info() const;
  // The level whose downsample is the largest not above `downsample` (never upsampling a level
  // more than needed, so detail is not invented).
  int best_level(double downsample) const;
  // A region of `level`, (x, y) in that level's pixels; may extend beyond the slide. Pixels
  // outside the slide or transparent are white (glass). Throws SegmentationError when the level's
  // data cannot be decoded.
  RgbImage read_region(int level, std::int64_t x, std::int64_t y, int width, int height) const;

private:
  struct Impl;
  explicit Slide(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---- tissue ----------------------------------------------------------------------------------

struct TissueOptions {
  int max_side = 2048;          // thumbnail size (pixels of the longer side) tissue is found on
  double min_saturation = 0.04; // Otsu's threshold is never below this (a blank slide has no tissue)
  int closing_radius = 2;       // morphology on the thumbnail, pixels: closing joins fragments,
  int opening_radius = 2;       // opening drops dust and specks
};

struct TissueMask {
  int width = 0, height = 0;
  double downsample = 1;             // level-0 pixels per mask pixel
  double threshold = 0;              // saturation threshold used (Otsu, at least min_saturation)
  std::vector<std::uint8_t> mask;    // 1 = tissue
  RgbImage thumbnail;                // the slide at the mask's resolution

  double tissue_fraction() const;
  // Fraction of tissue in the level-0 rectangle [x0, x1) x [y0, y1) (0 outside the slide).
  double fraction(double x0, double y0, double x1, double y1) const;
};

// Saturation (HSV) of a thumbnail read in strips from a low level, Otsu's threshold, closing then
// opening. Memory: the thumbnail plus one strip, whatever the slide's size.
TissueMask detect_tissue(const Slide& slide, const TissueOptions& options = {});

// The thumbnail with non-tissue dimmed and the tissue outline drawn, as PNG (atomically).
void write_tissue_picture(const TissueMask& tissue, const std::filesystem::path& png);
void write_png(const RgbImage& image, const std::filesystem::path& png);

// H&E colour deconvolution (Ruifrok & Johnston 2001 stain vectors): optical density of
// haematoxylin and eosin per pixel of an RGB image.
struct StainDensities {
  std::vector<float> haematoxylin, eosin;
};
StainDensities deconvolve_he(const RgbImage& image);

// Pseudo-labels for the demo model: 0 background (glass: low saturation), 1 tissue, 2 nuclei
// (haematoxylin optical density above `nuclei_threshold` inside tissue, specks removed).
std::vector<std::uint8_t> he_pseudo_labels(const RgbImage& image, double nuclei_threshold = 0.35);

// ---- pyramidal TIFF --------------------------------------------------------------------------

// Streams an 8-bit label image, rows top to bottom, into a tiled pyramidal TIFF: level 0 plus
// levels downsampled by 2 (majority of each 2x2 block) until one tile holds the image; palette
// colours from the labels; resolution tags (pixels per centimetre) for OpenSlide and QuPath.
// Memory: one row of tiles per level. Levels > 0 are written to temporary files beside `path`
// and appended to `path` by finish().
struct PyramidTiffOptions {
  int tile = 256;                           // multiple of 16
  double mpp = 0;                           // micrometres per level-0 pixel; 0: no resolution tags
  std::vector<std::array<int, 3>> palette;  // colour of label value i (others grey)
  std::string description;                  // ImageDescription of level 0
};

class PyramidTiffWriter {
public:
  PyramidTiffWriter(const std::filesystem::path& path, int width, int height, const PyramidTiffOptions& options);
  ~PyramidTiffWriter();  // removes temporary files when finish() was not reached
  PyramidTiffWriter(const PyramidTiffWriter&) = delete;
  PyramidTiffWriter& operator=(const PyramidTiffWriter&) = delete;

  // `count` rows of `width` labels each, `stride` bytes apart.
  void push_rows(const std::uint8_t* rows, int count, std::size_t stride);
  // All rows pushed: appends the downsampled levels and closes the file. Returns the level sizes.
  std::vector<std::pair<int, int>> finish();

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One level of a label mask written by PyramidTiffWriter (or any 8-bit single-sample tiled TIFF).
struct LabelMask {
  int width = 0, height = 0;
  std::vector<std::uint8_t> labels;
};
LabelMask read_label_mask(const std::filesystem::path& tiff, int level = 0);

// ---- QuPath annotations ------------------------------------------------------------------------

// A QuPath-compatible GeoJSON FeatureCollection in level-0 pixel coordinates: one "Tissue"
// feature (the tissue mask's outline) and one feature per class present in `mask` (label value >
// 0, named and coloured by `card`), each a MultiPolygon of outer rings with their holes traced
// along the mask's pixel edges and scaled by `mask_downsample` (level-0 pixels per mask pixel);
// properties.objectType "annotation", properties.classification {name, color [r, g, b]}.
nlohmann::json qupath_annotations(const TissueMask& tissue, const LabelMask& mask, double mask_downsample,
                                  const ModelCard& card);

// The mask level polygons are traced on: the finest whose pixel count is at most `max_pixels`
// (level 0 for all but the largest slides), given the mask's level sizes.
int annotation_level(const std::vector<std::pair<int, int>>& level_sizes, long long max_pixels = 64ll << 20);

// ---- one slide -------------------------------------------------------------------------------

struct WsiOptions {
  double overlap = 0.25;            // fraction of a window shared with each neighbour, [0, 0.5]
  int batch_size = 8;               // windows per forward pass
  int reader_threads = 2;           // threads decoding and resampling tiles while the network runs
  int threads = 0;                  // LibTorch threads (0: hardware threads)
  double min_tissue_fraction = 0.05;// a window's centre tile with less tissue is skipped (background)
  std::optional<double> assume_mpp; // for slides whose file does not give a resolution
  std::optional<double> target_mpp; // instead of the card's microns_per_pixel
  int tiff_tile = 256;
  TissueOptions tissue;
  // (windows done, windows to run); return false to stop (segment_slide then throws).
  std::function<bool(long long, long long)> progress;
};

// Files of one slide's output folder.
struct SlideOutputs {
  std::filesystem::path mask, tissue_picture, annotations, summary;  // annotations: QuPath GeoJSON
  static SlideOutputs in(const std::filesystem::path& folder);
};

// Segments one slide with `model` (2D, RGB, card with microns_per_pixel) and writes mask.tiff,
// tissue.png, annotations.geojson (qupath_annotations) and summary.json into `folder`, each through a temporary name and a rename; the
// summary is written last and marks the slide complete. Returns the summary. Throws
// SegmentationError for bad slides (nothing is left behind).
nlohmann::json segment_slide(const Model& model, const std::filesystem::path& slide, const std::filesystem::path& folder,
                             const WsiOptions& options = {});

// The settings that decide a slide's outputs (model hash, resolution, tiling); a finished slide
// whose summary records the same settings is not recomputed.
nlohmann::json output_settings(const ModelCard& card, const WsiOptions& options);

// ---- batches ---------------------------------------------------------------------------------
// Lists, shards, skipping finished slides, per-slide atomic folders and the batch CSV are the
// commands' one batch runner (sagitta::batch, modules/batch); what a slide needs from it is here.

// Output folder name of a slide: its file name without extension.
std::string slide_name(const std::filesystem::path& slide);

// The summary in `folder` when it marks the slide finished with `settings` (output_settings):
// it exists, parses, records the same settings and, for a slide segmented at an assumed
// resolution, the same assumption. nullopt: the slide is (re)computed.
std::optional<nlohmann::json> finished_summary(const std::filesystem::path& folder, const nlohmann::json& settings,
                                               std::optional<double> assume_mpp);

// ---- demo model ------------------------------------------------------------------------------

struct DemoTrainOptions {
  std::vector<std::filesystem::path> slides;   // training slides
  std::vector<double> assume_mpp;              // per slide (0: the file's resolution)
  double mpp = 1.0;                            // model resolution
  double holdout = 0.25;                       // bottom fraction of each slide kept for testing
  int patch = 128, base_channels = 8, depth = 4;
  int epochs = 20, iterations = 20, batch_size = 8;
  double learning_rate = 3e-3;
  unsigned seed = 1;
  int threads = 1;
  double nuclei_threshold = 0.35;
  std::filesystem::path output;                // model.pt + model.json
  std::string command;                         // recorded in the card
  std::function<void(int epoch, double loss)> progress;
};

// Trains the native U-Net (3 input channels) on H&E pseudo-labels of the slides' upper parts and
// scores it (Dice per class against the pseudo-labels) on the held-out lower parts; the numbers
// go into the card's provenance. Returns the card path.
std::filesystem::path train_demo_model(const DemoTrainOptions& options);

}  // namespace sagitta::segmentation::wsi

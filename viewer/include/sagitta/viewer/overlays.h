#pragma once
// Label maps and heatmaps shown over a volume: reading them, checking (or resampling to) the
// volume's geometry, and the label table (names, colours, visibility, opacity).
#include <itkImage.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sagitta/core/image.h"

namespace sagitta::viewer {

using sagitta::Image;       // float volume or heatmap, LPS
using sagitta::LabelImage;  // label values
using Vec3 = std::array<double, 3>;  // a point or direction in patient space (LPS, mm)

struct LabelStyle {
  std::string name;
  std::array<double, 3> color{1, 1, 1};  // RGB 0..1
  double opacity = 0.5;                  // 0..1; applies on top of the global overlay opacity
  bool visible = true;
};

// Label value -> style. Value 0 (background) is never drawn.
class LabelTable {
public:
  // Default colours for values 1..max_label (a fixed, distinguishable table, then a hue walk).
  static LabelTable defaults(int max_label);
  // Names and colours from a model card's "labels" (value, name, color [r,g,b] 0..255); labels
  // present in the map but absent from the card get default colours.
  static LabelTable from_model_card(const std::filesystem::path& card, int max_label);

  LabelStyle& operator[](int value);  // creates a default style when absent
  const LabelStyle* find(int value) const;
  const std::map<int, LabelStyle>& styles() const { return styles_; }

private:
  std::map<int, LabelStyle> styles_;
};

// The default colour of label `value` (RGB 0..1).
std::array<double, 3> default_label_color(int value);

// Geometry equality within a tolerance: size, spacing, origin and direction.
bool same_geometry(const itk::ImageBase<3>* a, const itk::ImageBase<3>* b, double tolerance_mm = 1e-3);
// A one-line description of how two geometries differ (for error messages).
std::string geometry_difference(const itk::ImageBase<3>* reference, const itk::ImageBase<3>* other);

enum class GeometryMismatch { Refuse, Resample };

// Reads a label map (integer values 0..65535; refuses fractional or negative values) and makes
// sure it lies on `reference`'s grid: refuses a different geometry, or resamples it
// (nearest neighbour) when asked.
LabelImage::Pointer read_label_map(const std::filesystem::path& path, const Image* reference,
                                   GeometryMismatch mismatch = GeometryMismatch::Refuse);
// The same for an image already in memory (float values).
LabelImage::Pointer to_label_map(const Image* labels, const std::string& what);

// Reads a heatmap (any scalar volume; linear resampling when asked and needed).
Image::Pointer read_heatmap(const std::filesystem::path& path, const Image* reference,
                            GeometryMismatch mismatch = GeometryMismatch::Refuse);

// Resamples onto `reference`'s grid (nearest neighbour for labels, linear for images).
LabelImage::Pointer resample_like(const LabelImage* labels, const itk::ImageBase<3>* reference);
Image::Pointer resample_like(const Image* image, const itk::ImageBase<3>* reference);

// Per-label voxel counts (index = label value).
std::vector<std::size_t> label_voxel_counts(const LabelImage* labels);

}  // namespace sagitta::viewer

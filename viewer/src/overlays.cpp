// Label maps and heatmaps shown over a volume: reading them, checking (or resampling to) the
// volume's geometry, and the label table (names, colours, visibility, opacity) (the declarations
// and their contract: sagitta/viewer/overlays.h).
#include "sagitta/viewer/overlays.h"

#include <itkImageRegionConstIterator.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "sagitta/core/error.h"
#include "sagitta/core/model_card.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/viewer/error.h"

namespace sagitta::viewer {
namespace fs = std::filesystem;

std::array<double, 3> default_label_color(int value) {
  // The first colours match what ITK-SNAP and Slicer users know; later ones walk the hue circle
  // by the golden angle so neighbours stay distinguishable.
  static const std::array<std::array<int, 3>, 12> table{{{230, 25, 25},
                                                         {25, 200, 60},
                                                         {40, 90, 240},
                                                         {250, 220, 30},
                                                         {0, 210, 210},
                                                         {220, 50, 220},
                                                         {250, 150, 40},
                                                         {150, 90, 40},
                                                         {140, 200, 255},
                                                         {180, 255, 120},
                                                         {255, 160, 190},
                                                         {130, 60, 200}}};
  if (value >= 1 && value <= static_cast<int>(table.size())) {
    const auto& c = table[static_cast<std::size_t>(value - 1)];
    return {c[0] / 255.0, c[1] / 255.0, c[2] / 255.0};
  }
  const double h = std::fmod(value * 137.508, 360.0) / 60.0;
  const double x = 1 - std::fabs(std::fmod(h, 2.0) - 1);
  std::array<double, 3> rgb{};
  switch (static_cast<int>(h)) {
    case 0: rgb = {1, x, 0}; break;
    case 1: rgb = {x, 1, 0}; break;
    case 2: rgb = {0, 1, x}; break;
    case 3: rgb = {0, x, 1}; break;
    case 4: rgb = {x, 0, 1}; break;
    default: rgb = {1, 0, x}; break;
  }
  for (auto& c : rgb) c = 0.25 + 0.75 * c;
  return rgb;
}

LabelTable LabelTable::defaults(int max_label) {
  LabelTable t;
  for (int v = 1; v <= max_label; ++v) t[v];
  return t;
}

LabelStyle& LabelTable::operator[](int value) {
  auto it = styles_.find(value);
  if (it != styles_.end()) return it->second;
  LabelStyle s;
  s.name = "label " + std::to_string(value);
  s.color = default_label_color(value);
  return styles_.emplace(value, s).first->second;
}

const LabelStyle* LabelTable::find(int value) const {
  auto it = styles_.find(value);
  return it == styles_.end() ? nullptr : &it->second;
}

LabelTable LabelTable::from_model_card(const fs::path& card, int max_label) {
  std::vector<sagitta::Label> labels;
  try {
    labels = sagitta::read_card_labels(card);
  } catch (const sagitta::Error& e) {
    throw ViewerError(e.what());
  }
  LabelTable t = defaults(max_label);
  for (const auto& l : labels) {
    if (l.value == 0) continue;  // background is never drawn
    LabelStyle& s = t[l.value];
    if (!l.name.empty()) s.name = l.name;
    if (l.color_given)
      for (std::size_t i = 0; i < 3; ++i) s.color[i] = std::clamp(double(l.color[i]), 0.0, 255.0) / 255.0;
  }
  return t;
}

bool same_geometry(const itk::ImageBase<3>* a, const itk::ImageBase<3>* b, double tolerance_mm) {
  if (a->GetLargestPossibleRegion().GetSize() != b->GetLargestPossibleRegion().GetSize()) return false;
  for (unsigned i = 0; i < 3; ++i) {
    if (std::fabs(a->GetSpacing()[i] - b->GetSpacing()[i]) > tolerance_mm) return false;
    if (std::fabs(a->GetOrigin()[i] - b->GetOrigin()[i]) > tolerance_mm) return false;
    for (unsigned k = 0; k < 3; ++k)
      if (std::fabs(a->GetDirection()(i, k) - b->GetDirection()(i, k)) > 1e-4) return false;
  }
  return true;
}

std::string geometry_difference(const itk::ImageBase<3>* reference, const itk::ImageBase<3>* other) {
  auto vec = [](auto v) {
    std::ostringstream s;
    s << "(" << v[0] << ", " << v[1] << ", " << v[2] << ")";
    return s.str();
  };
  const auto rs = reference->GetLargestPossibleRegion().GetSize(), os = other->GetLargestPossibleRegion().GetSize();
  if (rs != os) return "size " + vec(os) + " vs the volume's " + vec(rs);
  for (unsigned i = 0; i < 3; ++i)
    if (std::fabs(reference->GetSpacing()[i] - other->GetSpacing()[i]) > 1e-3)
      return "spacing " + vec(other->GetSpacing()) + " vs the volume's " + vec(reference->GetSpacing());
  for (unsigned i = 0; i < 3; ++i)
    if (std::fabs(reference->GetOrigin()[i] - other->GetOrigin()[i]) > 1e-3)
      return "origin " + vec(other->GetOrigin()) + " vs the volume's " + vec(reference->GetOrigin());
  return "direction differs from the volume's";
}

namespace {

Image::Pointer read_float(const fs::path& path, const std::string& what) {
  if (!fs::exists(path)) throw ViewerError(what + " " + path.string() + ": no such file");
  try {
    return sagitta::read_volume(path);
  } catch (const sagitta::Error& e) {
    throw ViewerError(what + " " + path.string() + ": " + e.what());
  } catch (const itk::ExceptionObject& e) {
    throw ViewerError(what + " " + path.string() + ": " + e.GetDescription());
  }
}

void check_or_resample_message(const fs::path& path, const std::string& what, const Image* reference,
                               const itk::ImageBase<3>* image) {
  throw ViewerError(what + " " + path.string() + " is not on the volume's grid (" +
                    geometry_difference(reference, image) +
                    "); pass --resample-overlays to resample it onto the volume");
}

template <typename TImage, typename TInterpolator>
typename TImage::Pointer resample(const TImage* image, const itk::ImageBase<3>* reference) {
  using Filter = itk::ResampleImageFilter<TImage, TImage>;
  auto f = Filter::New();
  f->SetInput(image);
  f->SetInterpolator(TInterpolator::New());
  f->SetSize(reference->GetLargestPossibleRegion().GetSize());
  f->SetOutputOrigin(reference->GetOrigin());
  f->SetOutputSpacing(reference->GetSpacing());
  f->SetOutputDirection(reference->GetDirection());
  f->SetDefaultPixelValue(0);
  f->Update();
  return f->GetOutput();
}

}  // namespace

LabelImage::Pointer to_label_map(const Image* labels, const std::string& what) {
  auto out = LabelImage::New();
  out->CopyInformation(labels);
  out->SetRegions(labels->GetLargestPossibleRegion());
  out->Allocate();
  const float* in = labels->GetBufferPointer();
  std::uint16_t* o = out->GetBufferPointer();
  const std::size_t n = labels->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) {
    const float v = in[i];
    if (!(v >= 0.0f && v <= 65535.0f) || v != std::floor(v))
      throw ViewerError(what + ": value " + std::to_string(v) +
                        " is not a label (labels are integers 0..65535); is this a label map?");
    o[i] = static_cast<std::uint16_t>(v);
  }
  return out;
}

LabelImage::Pointer read_label_map(const fs::path& path, const Image* reference, GeometryMismatch mismatch) {
  auto raw = read_float(path, "label map");
  auto labels = to_label_map(raw, "label map " + path.string());
  if (reference && !same_geometry(reference, labels)) {
    if (mismatch == GeometryMismatch::Refuse) check_or_resample_message(path, "label map", reference, labels);
    labels = resample_like(labels, reference);
  }
  return labels;
}

Image::Pointer read_heatmap(const fs::path& path, const Image* reference, GeometryMismatch mismatch) {
  auto heat = read_float(path, "heatmap");
  if (reference && !same_geometry(reference, heat)) {
    if (mismatch == GeometryMismatch::Refuse) check_or_resample_message(path, "heatmap", reference, heat);
    heat = resample_like(heat, reference);
  }
  return heat;
}

LabelImage::Pointer resample_like(const LabelImage* labels, const itk::ImageBase<3>* reference) {
  return resample<LabelImage, itk::NearestNeighborInterpolateImageFunction<LabelImage, double>>(labels, reference);
}

Image::Pointer resample_like(const Image* image, const itk::ImageBase<3>* reference) {
  return resample<Image, itk::LinearInterpolateImageFunction<Image, double>>(image, reference);
}

std::vector<std::size_t> label_voxel_counts(const LabelImage* labels) {
  std::vector<std::size_t> counts(65536, 0);
  const std::uint16_t* p = labels->GetBufferPointer();
  const std::size_t n = labels->GetLargestPossibleRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) ++counts[p[i]];
  std::size_t last = counts.size();
  while (last > 1 && counts[last - 1] == 0) --last;
  counts.resize(last);
  return counts;
}

}  // namespace sagitta::viewer

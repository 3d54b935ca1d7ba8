// Resampling to the model's grid, body crop, normalisation, and the way back to the source grid.
#include "sagitta/segmentation/preprocess.h"

#include <fmt/format.h>
#include <itkLinearInterpolateImageFunction.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkRegionOfInterestImageFilter.h>
#include <itkResampleImageFilter.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "sagitta/core/image.h"
#include "model_conventions.h"
#include "nnunet_pipeline.h"
#include "sagitta/segmentation/error.h"
#include "normalise.h"

namespace sagitta::segmentation {

namespace {

// Spacings within this relative tolerance count as equal: resampling a grid onto itself only
// blurs.
constexpr double kSpacingTolerance = 1e-3;

std::string channel_name(const ModelCard& card, std::size_t c) {
  return card.channels[c].name.empty() ? fmt::format("channel {}", c) : "channel '" + card.channels[c].name + "'";
}

template <typename TImage>
typename TImage::Pointer new_like(const itk::ImageBase<3>& grid) {
  auto image = TImage::New();
  image->SetRegions(grid.GetLargestPossibleRegion());
  image->SetOrigin(grid.GetOrigin());
  image->SetSpacing(grid.GetSpacing());
  image->SetDirection(grid.GetDirection());
  sagitta::allocate_huge(image.GetPointer());
  return image;
}

template <typename TImage, typename TInterpolator>
typename TImage::Pointer resample_onto(const TImage& input, const itk::ImageBase<3>& grid,
                                       typename TImage::PixelType outside) {
  using Filter = itk::ResampleImageFilter<TImage, TImage>;
  auto filter = Filter::New();
  filter->SetInput(&input);
  filter->SetInterpolator(TInterpolator::New());
  filter->SetOutputOrigin(grid.GetOrigin());
  filter->SetOutputSpacing(grid.GetSpacing());
  filter->SetOutputDirection(grid.GetDirection());
  filter->SetSize(grid.GetLargestPossibleRegion().GetSize());
  filter->SetOutputStartIndex(grid.GetLargestPossibleRegion().GetIndex());
  filter->SetDefaultPixelValue(outside);
  filter->Update();
  typename TImage::Pointer out = filter->GetOutput();
  out->DisconnectPipeline();
  return out;
}

void check_finite(const Image& image, const std::string& what) {
  const float* p = image.GetBufferPointer();
  const std::size_t n = image.GetBufferedRegion().GetNumberOfPixels();
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i) bad += !std::isfinite(p[i]);
  if (bad) throw SegmentationError(fmt::format("{} has {} NaN or infinite voxels; the model cannot segment them", what, bad));
}

void normalise(const Image& in, Image& out, const Normalization& n, std::vector<std::string>& decisions,
               const std::string& what) {
  std::string decision = detail::normalise(in.GetBufferPointer(), out.GetBufferPointer(),
                                           in.GetBufferedRegion().GetNumberOfPixels(), n, what);
  if (!decision.empty()) decisions.push_back(std::move(decision));
}

}  // namespace

bool same_grid(const itk::ImageBase<3>& a, const itk::ImageBase<3>& b) {
  if (a.GetLargestPossibleRegion() != b.GetLargestPossibleRegion()) return false;
  for (int i = 0; i < 3; ++i) {
    if (std::abs(a.GetSpacing()[i] - b.GetSpacing()[i]) > 1e-6 * std::abs(a.GetSpacing()[i])) return false;
    if (std::abs(a.GetOrigin()[i] - b.GetOrigin()[i]) > 1e-6 * (1 + std::abs(a.GetOrigin()[i]))) return false;
    for (int j = 0; j < 3; ++j)
      if (std::abs(a.GetDirection()[i][j] - b.GetDirection()[i][j]) > 1e-6) return false;
  }
  return true;
}

// A grid with the axes `direction` (orthonormal columns) at `spacing`, covering the bounding box
// of the source's voxel centres in that frame, centred on it.
Image::Pointer oriented_grid(const itk::ImageBase<3>& source, const std::array<double, 3>& spacing,
                             const Image::DirectionType& direction, GridAnchor anchor) {
  const auto size = source.GetLargestPossibleRegion().GetSize();
  double lo[3], hi[3];
  for (int a = 0; a < 3; ++a) lo[a] = std::numeric_limits<double>::max(), hi[a] = std::numeric_limits<double>::lowest();
  for (int corner = 0; corner < 8; ++corner) {
    itk::ContinuousIndex<double, 3> index;
    for (int a = 0; a < 3; ++a) index[a] = (corner >> a & 1) ? double(size[a]) - 1 : 0.0;
    itk::Point<double, 3> p;
    source.TransformContinuousIndexToPhysicalPoint(index, p);
    for (unsigned a = 0; a < 3; ++a) {
      double u = 0;  // p in the grid's frame
      for (unsigned w = 0; w < 3; ++w) u += direction[w][a] * p[w];
      lo[a] = std::min(lo[a], u), hi[a] = std::max(hi[a], u);
    }
  }
  auto grid = Image::New();
  Image::SizeType new_size;
  Image::SpacingType new_spacing;
  double origin_u[3];
  for (unsigned a = 0; a < 3; ++a) {
    const double extent = hi[a] - lo[a];
    new_spacing[a] = spacing[a];
    if (anchor == GridAnchor::FirstVoxel) {  // np.round: half to even
      new_size[a] = itk::SizeValueType(std::max(1.0, std::nearbyint(extent / spacing[a] + 1.0)));
      origin_u[a] = lo[a];
      continue;
    }
    new_size[a] = itk::SizeValueType(std::floor(extent / spacing[a] + 1e-3)) + 1;
    origin_u[a] = lo[a] + (extent - double(new_size[a] - 1) * spacing[a]) / 2;
  }
  Image::PointType origin;
  for (unsigned w = 0; w < 3; ++w) {
    origin[w] = 0;
    for (unsigned a = 0; a < 3; ++a) origin[w] += direction[w][a] * origin_u[a];
  }
  Image::RegionType region;
  region.SetSize(new_size);
  grid->SetRegions(region);
  grid->SetSpacing(new_spacing);
  grid->SetOrigin(origin);
  grid->SetDirection(direction);
  return grid;
}

Image::Pointer axis_aligned_grid(const itk::ImageBase<3>& source, const std::array<double, 3>& spacing) {
  Image::DirectionType identity;
  identity.SetIdentity();
  return oriented_grid(source, spacing, identity);
}

namespace {

using Axes = std::array<std::array<double, 3>, 3>;  // LPS unit vector of each card array axis

// The source's own axes permuted and flipped to come closest to `code` (nibabel's io_orientation:
// the largest direction cosine first, then the largest of what is left), obliquity kept.
Axes closest_axes(const Image::DirectionType& d, const std::string& code) {
  const Axes target = orientation_vectors(code);
  Axes axes{};
  bool source_used[3] = {false, false, false}, target_done[3] = {false, false, false};
  for (int round = 0; round < 3; ++round) {
    double best = -1;
    int bs = 0, bt = 0;
    double sign = 1;
    for (int t = 0; t < 3; ++t)
      for (int sa = 0; sa < 3; ++sa) {
        if (target_done[t] || source_used[sa]) continue;
        double dot = 0;
        for (int w = 0; w < 3; ++w) dot += target[std::size_t(t)][std::size_t(w)] * d[unsigned(w)][unsigned(sa)];
        if (std::abs(dot) > best) best = std::abs(dot), bs = sa, bt = t, sign = dot < 0 ? -1 : 1;
      }
    source_used[bs] = target_done[bt] = true;
    for (int w = 0; w < 3; ++w) axes[std::size_t(bt)][std::size_t(w)] = sign * d[unsigned(w)][unsigned(bs)];
  }
  return axes;
}

}  // namespace

// The model's array: its axes (the card's orientation, made by resampling into an axis-aligned
// grid or by permuting the stored axes), in the order the tensor holds them, at the card's
// spacing. A 2D model keeps the source's spacing along its slice axis; spacings within tolerance
// of the source's are kept (resampling a grid onto itself only blurs).
Image::Pointer model_grid(const itk::ImageBase<3>& source, const ModelCard& card) {
  const auto& d = source.GetDirection();
  Axes axes{};
  if (card.orientation == "stored") {
    for (unsigned a = 0; a < 3; ++a)
      for (unsigned w = 0; w < 3; ++w) axes[a][w] = d[w][a];
  } else if (card.reorient == "closest") {
    axes = closest_axes(d, card.orientation);
  } else {
    axes = orientation_vectors(card.orientation);
  }
  const std::array<int, 3> order = card.tensor_order();
  Image::DirectionType direction;
  std::array<double, 3> spacing{};
  for (unsigned m = 0; m < 3; ++m) {
    const std::size_t a = std::size_t(order[m]);
    for (unsigned w = 0; w < 3; ++w) direction[w][m] = axes[a][w];
    // The source axis that runs closest to this one gives the spacing to keep.
    unsigned axis = 0;
    double best = -1;
    for (unsigned c = 0; c < 3; ++c) {
      double dot = 0;
      for (unsigned w = 0; w < 3; ++w) dot += axes[a][w] * d[w][c];
      if (std::abs(dot) > best) best = std::abs(dot), axis = c;
    }
    const double s = source.GetSpacing()[axis];
    const double target = a < card.spacing.size() ? card.spacing[a] : s;  // 2D models keep z
    spacing[m] = std::abs(target - s) <= kSpacingTolerance * target ? s : target;
  }
  return oriented_grid(source, spacing, direction,
                       detail::from_monai_bundle(card) ? GridAnchor::FirstVoxel : GridAnchor::Centre);
}

namespace {

void check_inputs(const std::vector<Image::Pointer>& inputs, const ModelCard& card) {
  if (inputs.size() != card.channels.size())
    throw SegmentationError(fmt::format("model '{}' expects {} input channel(s), {} volume(s) given", card.name,
                                        card.channels.size(), inputs.size()));
  for (std::size_t c = 0; c < inputs.size(); ++c) {
    if (!inputs[c] || inputs[c]->GetLargestPossibleRegion().GetNumberOfPixels() == 0)
      throw SegmentationError(channel_name(card, c) + ": the image is empty");
    if (inputs[c]->GetBufferedRegion() != inputs[c]->GetLargestPossibleRegion())
      throw SegmentationError(channel_name(card, c) + ": the image is not fully in memory");
    if (c > 0 && !same_grid(*inputs[c], *inputs[0]))
      throw SegmentationError(channel_name(card, c) + " is not on the same grid as " + channel_name(card, 0) +
                              "; register and resample the channels first");
    check_finite(*inputs[c], channel_name(card, c));
  }
  const auto size0 = inputs[0]->GetLargestPossibleRegion().GetSize();
  if (card.dimensions == 3 && std::min({size0[0], size0[1], size0[2]}) < 2)
    throw SegmentationError(fmt::format("a 3D model needs a volume, the image is {}x{}x{}", size0[0], size0[1], size0[2]));
}

// Every channel on the model's grid (linear interpolation), or the inputs themselves when their
// grid already is the model's.
std::vector<Image::Pointer> resample_to_model(const std::vector<Image::Pointer>& inputs, const ModelCard& card,
                                              Preprocessed& out) {
  const Image::Pointer grid = model_grid(*inputs[0], card);
  std::vector<Image::Pointer> resampled;
  out.resampled = !same_grid(*grid, *inputs[0]);
  for (const auto& input : inputs)
    resampled.push_back(out.resampled
                            ? resample_onto<Image, itk::LinearInterpolateImageFunction<Image>>(*input, *grid, 0.0f)
                            : input);
  if (out.resampled) {
    const auto s = grid->GetLargestPossibleRegion().GetSize();
    out.decisions.push_back(fmt::format("resampled (linear) from {:.4g}x{:.4g}x{:.4g} mm to the model's {:.4g}x{:.4g}x{:.4g} mm: {}x{}x{} voxels",
                                        inputs[0]->GetSpacing()[0], inputs[0]->GetSpacing()[1], inputs[0]->GetSpacing()[2],
                                        grid->GetSpacing()[0], grid->GetSpacing()[1], grid->GetSpacing()[2], s[0], s[1], s[2]));
  } else {
    out.decisions.push_back("no resampling: the volume's spacing is the model's");
  }
  return resampled;
}

// The bounding box of the voxels above `threshold` (x y z, inclusive); hi[0] < 0 when none.
void body_box(const Image& image, float threshold, long (&lo)[3], long (&hi)[3]) {
  const float* p = image.GetBufferPointer();
  const auto size = image.GetLargestPossibleRegion().GetSize();
  for (int a = 0; a < 3; ++a) lo[a] = long(size[std::size_t(a)]), hi[a] = -1;
  std::size_t i = 0;
  for (long z = 0; z < long(size[2]); ++z)
    for (long y = 0; y < long(size[1]); ++y)
      for (long x = 0; x < long(size[0]); ++x, ++i)
        if (p[i] > threshold) {
          const long v[3] = {x, y, z};
          for (int a = 0; a < 3; ++a) lo[a] = std::min(lo[a], v[a]), hi[a] = std::max(hi[a], v[a]);
        }
}

void crop_all(std::vector<Image::Pointer>& images, const Image::RegionType& region) {
  for (auto& image : images) {
    auto roi = itk::RegionOfInterestImageFilter<Image, Image>::New();
    roi->SetInput(image);
    roi->SetRegionOfInterest(region);
    roi->Update();
    image = roi->GetOutput();
    image->DisconnectPipeline();
  }
}

// The bounding box of the voxels of `image` above `threshold`, widened by `margin` voxels per axis
// and kept inside the image; nothing when no voxel is above.
std::optional<Image::RegionType> box_above(const Image& image, float threshold, const std::array<long, 3>& margin) {
  long lo[3], hi[3];
  body_box(image, threshold, lo, hi);
  if (hi[0] < 0) return std::nullopt;
  const auto size = image.GetLargestPossibleRegion().GetSize();
  Image::RegionType region;
  for (unsigned a = 0; a < 3; ++a) {
    lo[a] = std::max(0L, lo[a] - margin[a]);
    hi[a] = std::min(long(size[a]) - 1, hi[a] + margin[a]);
    region.SetIndex(a, lo[a]);
    region.SetSize(a, itk::SizeValueType(hi[a] - lo[a] + 1));
  }
  return region;
}

std::string cropped_size(const Image::RegionType& region, const Image& image) {
  const auto size = image.GetLargestPossibleRegion().GetSize();
  return fmt::format("{}x{}x{} of {}x{}x{} voxels", region.GetSize(0), region.GetSize(1), region.GetSize(2), size[0],
                     size[1], size[2]);
}

// The card's crop_foreground_margin (MONAI's CropForeground): the normalised channels cut to the
// bounding box of the first channel's positive voxels, plus the margin in voxels.
void crop_to_foreground(std::vector<Image::Pointer>& normalised, int margin, Preprocessed& out) {
  const Image& first = *normalised[0];
  const auto region = box_above(first, 0.0f, {margin, margin, margin});
  if (!region) {
    out.decisions.push_back("foreground crop skipped: no positive voxel");
    return;
  }
  if (*region == first.GetLargestPossibleRegion()) return;
  const std::string what = cropped_size(*region, first);
  crop_all(normalised, *region);
  out.cropped = true;
  out.decisions.push_back(fmt::format("cropped to the foreground (positive after normalisation, margin {} voxels): {}", margin, what));
}

// --crop-body: every channel cut to the body's bounding box (plus a margin) of the first one.
void crop_to_body(std::vector<Image::Pointer>& resampled, const ModelCard& card, const PreprocessOptions& options,
                  Preprocessed& out) {
  const Image& first = *resampled[0];
  const bool ct = card.channels[0].normalization.scheme == Normalization::Scheme::CT;
  const float* p = first.GetBufferPointer();
  float threshold = float(options.body_threshold_hu);
  if (!ct) threshold = *std::min_element(p, p + first.GetBufferedRegion().GetNumberOfPixels());
  std::array<long, 3> margin{};
  for (unsigned a = 0; a < 3; ++a) margin[a] = long(std::ceil(options.crop_margin_mm / first.GetSpacing()[a]));
  const auto region = box_above(first, threshold, margin);
  if (!region) {
    out.decisions.push_back("body crop skipped: no voxel above the body threshold");
    return;
  }
  if (*region == first.GetLargestPossibleRegion()) return;
  const std::string what = cropped_size(*region, first);
  crop_all(resampled, *region);
  out.cropped = true;
  out.decisions.push_back(fmt::format("cropped to the body ({} above {:.4g}, margin {} mm): {}", ct ? "HU" : "values",
                                      threshold, options.crop_margin_mm, what));
}

}  // namespace

Preprocessed preprocess(const std::vector<Image::Pointer>& inputs, const ModelCard& card,
                        const PreprocessOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  check_inputs(inputs, card);
  if (detail::runs_as_nnunet(card)) return detail::preprocess_nnunet(inputs, card);
  Preprocessed out;
  std::vector<Image::Pointer> resampled = resample_to_model(inputs, card, out);
  if (options.crop_to_body) crop_to_body(resampled, card, options, out);
  for (std::size_t c = 0; c < resampled.size(); ++c) {
    auto normalised = new_like<Image>(*resampled[c]);
    normalise(*resampled[c], *normalised, card.channels[c].normalization, out.decisions, channel_name(card, c));
    out.channels.push_back(normalised);
  }
  if (card.crop_foreground_margin) crop_to_foreground(out.channels, *card.crop_foreground_margin, out);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return out;
}

namespace {

// Nearest-neighbour mapping of `labels` onto the grid of `out` (voxels outside: 0), with ITK's
// rules (a voxel of `out` takes the label voxel whose continuous index rounds half up to it, and
// lies outside when a continuous index is below -0.5 or at or above size - 0.5), at memory speed:
// the continuous index is affine in out's index, and when the grids are axis-aligned to each other
// (a permutation with signs) each of out's axes drives one label axis, so one table per axis gives
// the offsets and the inner loop is a gather.
void nearest_onto(const LabelImage& labels, LabelImage& out) {
  const auto in_size = labels.GetBufferedRegion().GetSize();
  const auto out_size = out.GetBufferedRegion().GetSize();
  // ITK's own matrices: point -> index is spacing^-1 direction^-1, index -> point direction spacing.
  double to_index[3][3], to_point[3][3];
  const auto inverse = labels.GetInverseDirection();
  for (unsigned a = 0; a < 3; ++a)
    for (unsigned j = 0; j < 3; ++j) {
      to_index[a][j] = inverse[a][j] / labels.GetSpacing()[a];
      to_point[a][j] = out.GetDirection()[a][j] * out.GetSpacing()[j];
    }
  // c = c0 + A i: continuous label index of out's index i.
  double c0[3], A[3][3];
  for (unsigned a = 0; a < 3; ++a) {
    c0[a] = 0;
    for (unsigned j = 0; j < 3; ++j) c0[a] += to_index[a][j] * (out.GetOrigin()[j] - labels.GetOrigin()[j]);
    for (unsigned b = 0; b < 3; ++b) {
      A[a][b] = 0;
      for (unsigned j = 0; j < 3; ++j) A[a][b] += to_index[a][j] * to_point[j][b];
    }
  }
  const std::int64_t stride[3] = {1, std::int64_t(in_size[0]), std::int64_t(in_size[0] * in_size[1])};
  // Label index along axis a of continuous index c, or -1 outside.
  auto nearest = [&](unsigned a, double c) -> std::int64_t {
    if (!(c >= -0.5 && c < double(in_size[a]) - 0.5)) return -1;
    return std::min<std::int64_t>(std::int64_t(std::floor(c + 0.5)), std::int64_t(in_size[a]) - 1);
  };
  const std::uint16_t* in = labels.GetBufferPointer();
  std::uint16_t* o = out.GetBufferPointer();
  const std::size_t nx = out_size[0], ny = out_size[1], nz = out_size[2];

  // Which label axis each of out's axes drives, when every other coefficient is negligible.
  int drives[3] = {-1, -1, -1};
  bool aligned = true;
  for (unsigned b = 0; b < 3 && aligned; ++b) {
    for (unsigned a = 0; a < 3; ++a)
      if (std::abs(A[a][b]) * double(std::max<std::size_t>(out_size[b], 1)) > 1e-9) {
        if (drives[b] >= 0) aligned = false;
        drives[b] = int(a);
      }
    if (drives[b] < 0) aligned = false;
  }
  if (aligned && drives[0] != drives[1] && drives[0] != drives[2] && drives[1] != drives[2]) {
    // offset[b][i]: out's index i along b as an offset into the labels, -1 outside.
    std::vector<std::int64_t> offset[3];
    for (unsigned b = 0; b < 3; ++b) {
      const unsigned a = unsigned(drives[b]);
      double fixed = c0[a];
      offset[b].resize(out_size[b]);
      for (std::size_t i = 0; i < out_size[b]; ++i) {
        const std::int64_t k = nearest(a, fixed + A[a][b] * double(i));
        offset[b][i] = k < 0 ? -1 : k * stride[a];
      }
    }
    for (std::size_t z = 0; z < nz; ++z)
      for (std::size_t y = 0; y < ny; ++y) {
        std::uint16_t* row = o + (z * ny + y) * nx;
        const std::int64_t oz = offset[2][z], oy = offset[1][y];
        if (oz < 0 || oy < 0) {
          std::fill_n(row, nx, std::uint16_t(0));
          continue;
        }
        const std::uint16_t* base = in + oz + oy;
        const std::int64_t* ox = offset[0].data();
        for (std::size_t x = 0; x < nx; ++x) row[x] = ox[x] < 0 ? 0 : base[ox[x]];
      }
    return;
  }
  // Oblique: every voxel's continuous index from the affine map (no running sums, no drift).
  for (std::size_t z = 0; z < nz; ++z)
    for (std::size_t y = 0; y < ny; ++y) {
      std::uint16_t* row = o + (z * ny + y) * nx;
      double start[3];
      for (unsigned a = 0; a < 3; ++a) start[a] = c0[a] + A[a][1] * double(y) + A[a][2] * double(z);
      for (std::size_t x = 0; x < nx; ++x) {
        const std::int64_t i = nearest(0, start[0] + A[0][0] * double(x));
        const std::int64_t j = nearest(1, start[1] + A[1][0] * double(x));
        const std::int64_t k = nearest(2, start[2] + A[2][0] * double(x));
        row[x] = (i < 0 || j < 0 || k < 0) ? 0 : in[i + j * stride[1] + k * stride[2]];
      }
    }
}

}  // namespace

LabelImage::Pointer labels_to_source(const LabelImage& labels, const itk::ImageBase<3>& source) {
  auto out = new_like<LabelImage>(source);
  const bool zero_based = labels.GetBufferedRegion().GetIndex() == LabelImage::IndexType{{0, 0, 0}} &&
                          out->GetBufferedRegion().GetIndex() == LabelImage::IndexType{{0, 0, 0}};
  if (same_grid(labels, source)) {
    std::copy_n(labels.GetBufferPointer(), labels.GetBufferedRegion().GetNumberOfPixels(), out->GetBufferPointer());
  } else if (zero_based) {
    nearest_onto(labels, *out);
  } else {
    out = resample_onto<LabelImage, itk::NearestNeighborInterpolateImageFunction<LabelImage>>(labels, source, 0);
    out->CopyInformation(&source);  // bit-exact geometry, not a round trip through the filter's doubles
  }
  return out;
}

Image::Pointer probability_to_source(const Image& probability, const itk::ImageBase<3>& source, float outside) {
  if (same_grid(probability, source)) {
    auto out = new_like<Image>(source);
    std::copy_n(probability.GetBufferPointer(), probability.GetBufferedRegion().GetNumberOfPixels(), out->GetBufferPointer());
    return out;
  }
  auto out = resample_onto<Image, itk::LinearInterpolateImageFunction<Image>>(probability, source, outside);
  out->CopyInformation(&source);
  return out;
}

}  // namespace sagitta::segmentation

// DCMTK -> ITK: pixel data of a stack into itk::Image<float,3> volumes in the scanner's geometry
// (LPS, origin at the centre of the first voxel, direction columns = row, column, slice axes) (the
// declarations and their contract: sagitta/dicom/load.h).
#include "sagitta/dicom/load.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <type_traits>

#include "parallel_for.h"
#include "pixel_decode.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/core/image.h"
#include "stack_geometry.h"

namespace sagitta::dicom {
namespace {

template <typename TPixel>
typename itk::Image<TPixel, 3>::Pointer make_volume(const detail::StackGeometry& g) {
  using ImageType = itk::Image<TPixel, 3>;
  auto image = ImageType::New();
  typename ImageType::RegionType region;
  region.SetSize({{static_cast<itk::SizeValueType>(g.columns), static_cast<itk::SizeValueType>(g.rows),
                   static_cast<itk::SizeValueType>(g.slices)}});
  image->SetRegions(region);
  typename ImageType::SpacingType spacing;
  typename ImageType::PointType origin;
  typename ImageType::DirectionType direction;
  for (int i = 0; i < 3; ++i) {
    spacing[i] = g.spacing[i];
    origin[i] = g.origin[i];
    // Columns of the direction matrix: the image's x (along a row), y (down a column), z axes.
    direction[i][0] = g.row_direction[i];
    direction[i][1] = g.column_direction[i];
    direction[i][2] = g.normal[i];
  }
  image->SetSpacing(spacing);
  image->SetOrigin(origin);
  image->SetDirection(direction);
  allocate_huge(image.GetPointer());
  return image;
}

// Bilinear sample of a slice at continuous pixel coordinates; `fill` outside the slice.
float sample(const float* slice, int columns, int rows, double x, double y, float fill) {
  constexpr double eps = 1e-6;
  if (x < -eps || y < -eps || x > columns - 1 + eps || y > rows - 1 + eps) return fill;
  x = std::clamp(x, 0.0, double(columns - 1));
  y = std::clamp(y, 0.0, double(rows - 1));
  const int x0 = std::min(static_cast<int>(x), columns - 1), y0 = std::min(static_cast<int>(y), rows - 1);
  const int x1 = std::min(x0 + 1, columns - 1), y1 = std::min(y0 + 1, rows - 1);
  const double fx = x - x0, fy = y - y0;
  const double top = slice[std::size_t(y0) * columns + x0] * (1 - fx) + slice[std::size_t(y0) * columns + x1] * fx;
  const double bottom = slice[std::size_t(y1) * columns + x0] * (1 - fx) + slice[std::size_t(y1) * columns + x1] * fx;
  return static_cast<float>(top * (1 - fy) + bottom * fy);
}

// Output slices from the decoded frames in `scratch`: linear interpolation along the normal and
// bilinear in-plane shifts (gantry tilt), as planned in `g`.
void resample_slices(const detail::StackGeometry& g, const std::vector<float>& scratch,
                     std::vector<Image::Pointer>& volumes, int threads, const std::string& stack_id,
                     std::vector<Decision>& decisions) {
  const std::size_t slice_pixels = std::size_t(g.columns) * g.rows;
  const float fill = scratch.empty() ? 0.f : *std::min_element(scratch.begin(), scratch.end());
  const std::size_t jobs = std::size_t(g.volumes) * g.slices;
  detail::parallel_for(jobs, threads, [&](std::size_t job) {
    const int v = static_cast<int>(job / g.slices), k = static_cast<int>(job % g.slices);
    float* dst = volumes[v]->GetBufferPointer() + std::size_t(k) * slice_pixels;
    std::fill(dst, dst + slice_pixels, 0.f);
    for (const auto& src : g.sources[v][k]) {
      const float* slice = scratch.data() + src.frame * slice_pixels;
      const bool whole_pixels = std::abs(src.shift_columns) < 1e-6 && std::abs(src.shift_rows) < 1e-6;
      for (int y = 0; y < g.rows; ++y)
        for (int x = 0; x < g.columns; ++x) {
          const std::size_t i = std::size_t(y) * g.columns + x;
          const float value = whole_pixels ? slice[i]
                                           : sample(slice, g.columns, g.rows, x - src.shift_columns,
                                                    y - src.shift_rows, fill);
          dst[i] += static_cast<float>(src.weight * value);
        }
    }
  });
  if (std::any_of(g.sources.front().begin(), g.sources.front().end(), [](const auto& s) {
        return std::abs(s.front().shift_columns) > 1e-6 || std::abs(s.front().shift_rows) > 1e-6;
      }))
    decisions.push_back({"stack " + stack_id,
                         fmt::format("voxels outside the acquired slices after the tilt correction "
                                     "are filled with the stack's minimum ({})", fill)});
}

bool integral(double v) { return std::abs(v - std::nearbyint(v)) < 1e-9; }

IntegerType exact_type(const Stack& stack, const detail::StackGeometry& g) {
  if (g.needs_resampling || stack.frames.empty()) return IntegerType::None;
  double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
  for (const Frame& f : stack.frames) {
    if (!integral(f.rescale_slope) || !integral(f.rescale_intercept)) return IntegerType::None;
    const double smin = f.pixel_signed ? -std::ldexp(1.0, f.bits_stored - 1) : 0.0;
    const double smax = f.pixel_signed ? std::ldexp(1.0, f.bits_stored - 1) - 1 : std::ldexp(1.0, f.bits_stored) - 1;
    const double a = smin * f.rescale_slope + f.rescale_intercept, b = smax * f.rescale_slope + f.rescale_intercept;
    lo = std::min({lo, a, b});
    hi = std::max({hi, a, b});
  }
  if (lo >= -32768 && hi <= 32767) return IntegerType::Int16;
  if (lo >= 0 && hi <= 65535) return IntegerType::UInt16;
  if (lo >= -2147483648.0 && hi <= 2147483647.0) return IntegerType::Int32;
  return IntegerType::None;
}

// The type that holds the raw stored values (before rescale) of every frame.
IntegerType stored_type(const Stack& stack, const detail::StackGeometry& g) {
  if (g.needs_resampling || stack.frames.empty()) return IntegerType::None;
  IntegerType widest = IntegerType::Int16;
  for (const Frame& f : stack.frames) {
    if (!integral(f.rescale_slope) || !integral(f.rescale_intercept)) return IntegerType::None;
    const int value_bits = f.bits_stored + (f.pixel_signed ? 0 : 1);  // bits a signed type needs
    if (value_bits <= 16) continue;
    if (!f.pixel_signed && f.bits_stored <= 16 && widest == IntegerType::Int16) widest = IntegerType::UInt16;
    else if (value_bits <= 32) widest = IntegerType::Int32;
    else return IntegerType::None;
  }
  return widest;
}

template <typename TPixel>
bool holds(IntegerType t) {
  if constexpr (std::is_floating_point_v<TPixel>) return true;
  switch (t) {
    case IntegerType::Int16: return std::is_signed_v<TPixel> || sizeof(TPixel) > 2;
    case IntegerType::UInt16: return !(std::is_signed_v<TPixel> && sizeof(TPixel) <= 2);
    case IntegerType::Int32: return std::is_signed_v<TPixel> && sizeof(TPixel) >= 4;
    case IntegerType::None: return false;
  }
  return false;
}

// Applies an integral rescale to stored values already in `slice`, or throws when a result
// would not fit TPixel.
template <typename TPixel>
void rescale_in_place(TPixel* slice, std::size_t n, const Frame& f, const std::string& stack_id) {
  const auto slope = static_cast<std::int64_t>(std::llround(f.rescale_slope));
  const auto intercept = static_cast<std::int64_t>(std::llround(f.rescale_intercept));
  if (slope == 1 && intercept == 0) return;
  const auto [lo, hi] = std::minmax_element(slice, slice + n);
  const std::int64_t a = *lo * slope + intercept, b = *hi * slope + intercept;
  if (std::min(a, b) < std::numeric_limits<TPixel>::min() || std::max(a, b) > std::numeric_limits<TPixel>::max())
    throw DicomError(fmt::format("stack {}: rescaled values {}..{} of {} do not fit the requested integer type; "
                                 "load it in a wider type or as float",
                                 stack_id, std::min(a, b), std::max(a, b), f.path));
  for (std::size_t i = 0; i < n; ++i) slice[i] = static_cast<TPixel>(slice[i] * slope + intercept);
}

// Frame indices grouped by file, each group in frame and tile order: each file is then opened
// once (a mosaic or multi-frame file holds many).
std::vector<std::vector<std::size_t>> frames_by_file(const Stack& stack) {
  std::map<std::string, std::vector<std::size_t>> by_file;
  for (std::size_t i = 0; i < stack.frames.size(); ++i) by_file[stack.frames[i].path].push_back(i);
  std::vector<std::vector<std::size_t>> files;
  for (auto& [path, frames] : by_file) {
    std::sort(frames.begin(), frames.end(), [&](std::size_t a, std::size_t b) {
      return std::make_pair(stack.frames[a].frame, stack.frames[a].mosaic_tile) <
             std::make_pair(stack.frames[b].frame, stack.frames[b].mosaic_tile);
    });
    files.push_back(std::move(frames));
  }
  return files;
}

// Where each frame goes when no resampling is needed: (volume, slice); (-1, -1) for none.
std::vector<std::pair<int, int>> frame_destinations(const detail::StackGeometry& g, std::size_t frame_count) {
  std::vector<std::pair<int, int>> destination(frame_count, {-1, -1});
  if (!g.needs_resampling)
    for (int v = 0; v < g.volumes; ++v)
      for (int k = 0; k < g.slices; ++k) destination[g.sources[v][k].front().frame] = {v, k};
  return destination;
}

// Decodes a frame into its output slice. An integer type that holds only the stored values
// (`via_stored`) gets them unscaled, then rescaled in place once their actual range is known.
template <typename TPixel>
void read_into_slice(detail::FrameReader& reader, const Frame& frame, TPixel* slice, bool via_stored,
                     std::size_t slice_pixels, const std::string& stack_id) {
  if (!via_stored) {
    reader.read(frame, slice);
    return;
  }
  if constexpr (!std::is_floating_point_v<TPixel>) {
    Frame raw = frame;
    raw.rescale_slope = 1.0;
    raw.rescale_intercept = 0.0;
    reader.read(raw, slice);
    rescale_in_place(slice, slice_pixels, frame, stack_id);
  }
}

// Provenance of each output slice: the frame that weighs most in it.
void record_slice_sources(const detail::StackGeometry& g, const Stack& stack, SeriesInfo& info) {
  info.slices.assign(g.volumes, {});
  for (int v = 0; v < g.volumes; ++v)
    for (int k = 0; k < g.slices; ++k) {
      const auto& sources = g.sources[v][k];
      const auto best = std::max_element(sources.begin(), sources.end(),
                                         [](const auto& a, const auto& b) { return a.weight < b.weight; });
      const Frame& f = stack.frames[best->frame];
      info.slices[v].push_back({f.sop_instance_uid, f.sop_class_uid, f.frame, f.path});
    }
}

}  // namespace

IntegerType exact_integer_type(const Stack& stack, const LoadOptions& options) {
  return exact_type(stack, detail::plan_geometry(stack.frames, options));
}

IntegerType stored_integer_type(const Stack& stack, const LoadOptions& options) {
  return stored_type(stack, detail::plan_geometry(stack.frames, options));
}

LoadedSeries load(const Stack& stack, const LoadOptions& options) { return load_as<float>(stack, options); }

template <typename TPixel>
LoadedSeriesOf<TPixel> load_as(const Stack& stack, const LoadOptions& options) {
  register_codecs();
  if (stack.frames.empty()) throw DicomError("stack " + stack.id + " has no images");
  const detail::StackGeometry g = detail::plan_geometry(stack.frames, options);
  // An integer type either holds every value the headers allow, or at least the stored values:
  // then each slice is decoded unscaled and rescaled in place once its actual range is known.
  const bool via_stored = !holds<TPixel>(exact_type(stack, g));
  if (via_stored && !holds<TPixel>(stored_type(stack, g)))
    throw DicomError("stack " + stack.id +
                     ": its values (stored bits, rescale, resampling) do not fit the requested integer type; "
                     "load it as float");

  LoadedSeriesOf<TPixel> out;
  out.info = stack.info;
  for (const auto& d : g.decisions) out.decisions.push_back({"stack " + stack.id, d});
  for (int v = 0; v < g.volumes; ++v) out.volumes.push_back(make_volume<TPixel>(g));
  const std::size_t slice_pixels = std::size_t(g.columns) * g.rows;

  const std::vector<std::vector<std::size_t>> files = frames_by_file(stack);
  const std::vector<std::pair<int, int>> destination = frame_destinations(g, stack.frames.size());
  // Resampling (float only) needs every frame at hand: decode into a scratch stack first.
  std::vector<float> scratch;
  if (g.needs_resampling) scratch.resize(stack.frames.size() * slice_pixels);

  std::vector<detail::PixelFormat> formats(files.size());
  detail::parallel_for(files.size(), options.threads, [&](std::size_t f) {
    const auto& frame_ids = files[f];
    detail::FrameReader reader(stack.frames[frame_ids.front()].path);
    formats[f] = reader.format();
    for (std::size_t id : frame_ids) {
      if (g.needs_resampling) {
        reader.read(stack.frames[id], scratch.data() + id * slice_pixels);
        continue;
      }
      const auto [v, k] = destination[id];
      if (v < 0) continue;
      TPixel* slice = out.volumes[v]->GetBufferPointer() + std::size_t(k) * slice_pixels;
      read_into_slice(reader, stack.frames[id], slice, via_stored, slice_pixels, stack.id);
    }
  });

  // Only float volumes are ever resampled: exact_type() refuses integers for such stacks.
  if constexpr (std::is_floating_point_v<TPixel>)
    if (g.needs_resampling) resample_slices(g, scratch, out.volumes, options.threads, stack.id, out.decisions);

  // Provenance.
  if (formats.front().photometric == "MONOCHROME1")
    out.decisions.push_back({"stack " + stack.id, "MONOCHROME1: stored values inverted so that higher means brighter"});
  record_slice_sources(g, stack, out.info);
  return out;
}

template LoadedSeriesOf<float> load_as<float>(const Stack&, const LoadOptions&);
template LoadedSeriesOf<std::int16_t> load_as<std::int16_t>(const Stack&, const LoadOptions&);
template LoadedSeriesOf<std::uint16_t> load_as<std::uint16_t>(const Stack&, const LoadOptions&);
template LoadedSeriesOf<std::int32_t> load_as<std::int32_t>(const Stack&, const LoadOptions&);

}  // namespace sagitta::dicom

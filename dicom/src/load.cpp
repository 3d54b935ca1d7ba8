#include "sagitta/dicom/load.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "parallel_for.h"
#include "pixel_decode.h"
#include "sagitta/dicom/codecs.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/image_memory.h"
#include "stack_geometry.h"

namespace sagitta::dicom {
namespace {

Image::Pointer make_volume(const detail::StackGeometry& g) {
  auto image = Image::New();
  Image::RegionType region;
  region.SetSize({{static_cast<itk::SizeValueType>(g.columns), static_cast<itk::SizeValueType>(g.rows),
                   static_cast<itk::SizeValueType>(g.slices)}});
  image->SetRegions(region);
  Image::SpacingType spacing;
  Image::PointType origin;
  Image::DirectionType direction;
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

}  // namespace

LoadedSeries load(const Stack& stack, const LoadOptions& options) {
  register_codecs();
  if (stack.frames.empty()) throw DicomError("stack " + stack.id + " has no images");
  const detail::StackGeometry g = detail::plan_geometry(stack.frames, options);

  LoadedSeries out;
  out.info = stack.info;
  for (const auto& d : g.decisions) out.decisions.push_back({"stack " + stack.id, d});
  for (int v = 0; v < g.volumes; ++v) out.volumes.push_back(make_volume(g));
  const std::size_t slice_pixels = std::size_t(g.columns) * g.rows;

  // Frames grouped by file, so each file is opened once (a mosaic or multi-frame file holds many).
  std::map<std::string, std::vector<std::size_t>> by_file;
  for (std::size_t i = 0; i < stack.frames.size(); ++i) by_file[stack.frames[i].path].push_back(i);
  std::vector<const std::vector<std::size_t>*> files;
  for (auto& [path, frames] : by_file) {
    std::sort(frames.begin(), frames.end(), [&](std::size_t a, std::size_t b) {
      return std::make_pair(stack.frames[a].frame, stack.frames[a].mosaic_tile) <
             std::make_pair(stack.frames[b].frame, stack.frames[b].mosaic_tile);
    });
    files.push_back(&frames);
  }

  // Where each frame goes when no resampling is needed: (volume, slice).
  std::vector<std::pair<int, int>> destination(stack.frames.size(), {-1, -1});
  if (!g.needs_resampling)
    for (int v = 0; v < g.volumes; ++v)
      for (int k = 0; k < g.slices; ++k) destination[g.sources[v][k].front().frame] = {v, k};
  // Resampling needs every frame at hand: decode into a scratch stack first.
  std::vector<float> scratch;
  if (g.needs_resampling) scratch.resize(stack.frames.size() * slice_pixels);

  std::vector<detail::PixelFormat> formats(files.size());
  detail::parallel_for(files.size(), options.threads, [&](std::size_t f) {
    const auto& frame_ids = *files[f];
    detail::FrameReader reader(stack.frames[frame_ids.front()].path);
    formats[f] = reader.format();
    for (std::size_t id : frame_ids) {
      float* target = nullptr;
      if (g.needs_resampling) {
        target = scratch.data() + id * slice_pixels;
      } else {
        const auto [v, k] = destination[id];
        if (v < 0) continue;
        target = out.volumes[v]->GetBufferPointer() + std::size_t(k) * slice_pixels;
      }
      reader.read(stack.frames[id], target);
    }
  });

  if (g.needs_resampling) {
    const float fill = scratch.empty() ? 0.f : *std::min_element(scratch.begin(), scratch.end());
    const std::size_t jobs = std::size_t(g.volumes) * g.slices;
    detail::parallel_for(jobs, options.threads, [&](std::size_t job) {
      const int v = static_cast<int>(job / g.slices), k = static_cast<int>(job % g.slices);
      float* dst = out.volumes[v]->GetBufferPointer() + std::size_t(k) * slice_pixels;
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
      out.decisions.push_back({"stack " + stack.id,
                               fmt::format("voxels outside the acquired slices after the tilt correction "
                                           "are filled with the stack's minimum ({})", fill)});
  }

  // Stored representation and provenance.
  const auto& first = formats.front();
  out.bits_allocated = first.bits_allocated;
  out.bits_stored = first.bits_stored;
  out.pixel_signed = first.pixel_signed;
  for (const auto& f : stack.frames)
    if (f.rescale_slope != 1.0 || f.rescale_intercept != 0.0) out.rescaled = true;
  if (first.photometric == "MONOCHROME1")
    out.decisions.push_back({"stack " + stack.id, "MONOCHROME1: stored values inverted so that higher means brighter"});
  out.info.slices.assign(g.volumes, {});
  for (int v = 0; v < g.volumes; ++v)
    for (int k = 0; k < g.slices; ++k) {
      const auto& sources = g.sources[v][k];
      const auto best = std::max_element(sources.begin(), sources.end(),
                                         [](const auto& a, const auto& b) { return a.weight < b.weight; });
      const Frame& f = stack.frames[best->frame];
      out.info.slices[v].push_back({f.sop_instance_uid, f.sop_class_uid, f.frame, f.path});
    }
  return out;
}

}  // namespace sagitta::dicom

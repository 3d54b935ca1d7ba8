// The geometry of a stack: which frames make which output slice of which volume, on what grid (the
// declarations and their contract: stack_geometry.h).
#include "stack_geometry.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "sagitta/dicom/error.h"

namespace sagitta::dicom::detail {
namespace {

constexpr double kPi = 3.14159265358979323846;
// Frames closer than this along the normal are the same position (repeated time points).
constexpr double kSamePositionMm = 0.01;

double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
Vec3 sub(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }

Vec3 row_of(const Frame& f) { return {f.orientation[0], f.orientation[1], f.orientation[2]}; }
Vec3 col_of(const Frame& f) { return {f.orientation[3], f.orientation[4], f.orientation[5]}; }

void check_consistent_planes(const std::vector<Frame>& frames) {
  const Frame& first = frames.front();
  for (const Frame& f : frames) {
    for (int i = 0; i < 6; ++i)
      if (std::abs(f.orientation[i] - first.orientation[i]) > 1e-3)
        throw DicomError(fmt::format(
            "{}: ImageOrientationPatient differs from the first image of its stack ({}); "
            "the stack cannot form one volume",
            f.path, first.path));
    if (f.rows != first.rows || f.columns != first.columns)
      throw DicomError(fmt::format("{}: {}x{} pixels differ from the stack's {}x{}", f.path,
                                   f.columns, f.rows, first.columns, first.rows));
    for (int i = 0; i < 2; ++i)
      if (std::abs(f.pixel_spacing[i] - first.pixel_spacing[i]) > 1e-4 * first.pixel_spacing[i])
        throw DicomError(fmt::format("{}: PixelSpacing differs from the stack's", f.path));
  }
}

// Order of repeated acquisitions of one position: temporal position, acquisition, time, instance.
auto time_key(const Frame& f) {
  return std::make_tuple(f.temporal_position, f.acquisition_number, f.acquisition_time,
                         f.instance_number, f.path, f.frame, f.mosaic_tile);
}

// The in-plane axes and spacing of the first frame, which every frame shares.
StackGeometry plane_of(const Frame& first) {
  StackGeometry g;
  g.row_direction = row_of(first);
  g.column_direction = col_of(first);
  g.normal = cross(g.row_direction, g.column_direction);
  g.columns = first.columns;
  g.rows = first.rows;
  g.spacing[0] = first.pixel_spacing[1];  // PixelSpacing is (between rows, between columns)
  g.spacing[1] = first.pixel_spacing[0];
  return g;
}

// Repeated positions: a multi-volume series, if every position repeats equally often.
void count_volumes(const std::vector<std::vector<std::size_t>>& clusters, std::size_t frame_count, StackGeometry& g) {
  const std::size_t per_position = clusters.front().size();
  for (const auto& c : clusters)
    if (c.size() != per_position)
      throw DicomError(fmt::format(
          "{} frames at {} positions repeat unevenly ({} at one position, {} at another): "
          "the stack mixes acquisitions that do not form whole volumes",
          frame_count, clusters.size(), per_position, c.size()));
  g.volumes = static_cast<int>(per_position);
  if (g.volumes > 1)
    g.decisions.push_back(fmt::format("{} volumes of {} slices: each position was acquired {} times "
                                      "(ordered by temporal position, acquisition, time)",
                                      g.volumes, clusters.size(), g.volumes));
}

// In-plane offset (in pixels) of each position's corner from the normal through the first:
// zero for an ordinary stack, growing linearly for a gantry-tilted one.
struct InPlaneShifts {
  std::vector<double> columns, rows;
  bool sheared = false;
};

InPlaneShifts in_plane_shifts(const std::vector<Frame>& frames, const std::vector<std::vector<std::size_t>>& clusters,
                              const StackGeometry& g) {
  const std::size_t n_positions = clusters.size();
  InPlaneShifts shifts;
  shifts.columns.resize(n_positions);
  shifts.rows.resize(n_positions);
  double max_shift = 0;
  for (std::size_t k = 0; k < n_positions; ++k) {
    Vec3 off = sub(frames[clusters[k].front()].position, g.origin);
    const double along = dot(off, g.normal);
    for (int i = 0; i < 3; ++i) off[i] -= along * g.normal[i];
    shifts.columns[k] = dot(off, g.row_direction) / g.spacing[0];
    shifts.rows[k] = dot(off, g.column_direction) / g.spacing[1];
    max_shift = std::max({max_shift, std::abs(shifts.columns[k]), std::abs(shifts.rows[k])});
  }
  shifts.sheared = max_shift > 1e-3;
  return shifts;
}

void note_gantry_tilt(const Vec3& last_position, const Frame& first, StackGeometry& g) {
  const Vec3 d = sub(last_position, g.origin);
  const double len = std::sqrt(dot(d, d));
  const double angle = len > 0 ? std::acos(std::min(1.0, std::abs(dot(d, g.normal)) / len)) * 180 / kPi : 0;
  g.decisions.push_back(fmt::format(
      "gantry tilt of {:.2f} degrees (GantryDetectorTilt says {:.2f}): slices are sheared; "
      "each slice was shifted in-plane (bilinear) onto a grid perpendicular to the slices, "
      "so every voxel keeps its true physical position",
      angle, first.gantry_tilt));
}

// Gaps between consecutive positions along the normal (`s`, ascending, at least two).
struct Gaps {
  double extent = 0, mean = 0, min = 0, max = 0;
  std::size_t widest = 0;  // the gap after position `widest` is the largest
};

Gaps gaps_of(const std::vector<double>& s) {
  Gaps gaps;
  gaps.extent = s.back() - s.front();
  gaps.mean = gaps.extent / double(s.size() - 1);
  gaps.min = gaps.extent;
  for (std::size_t k = 0; k + 1 < s.size(); ++k) {
    const double gap = s[k + 1] - s[k];
    gaps.min = std::min(gaps.min, gap);
    if (gap > gaps.max) {
      gaps.max = gap;
      gaps.widest = k;
    }
  }
  return gaps;
}

// Uneven gaps, when allowed: a uniform grid at the smallest gap, resampled along the normal.
void resample_irregular(const Gaps& gaps, std::size_t n_positions, StackGeometry& g) {
  const int count = static_cast<int>(std::lround(gaps.extent / gaps.min)) + 1;
  if (count > 4 * static_cast<int>(n_positions) + 16)
    throw DicomError(fmt::format(
        "slice gaps range from {:.4g} to {:.4g} mm; a uniform grid would need {} slices for {} "
        "acquired ones, too many to interpolate faithfully",
        gaps.min, gaps.max, count, n_positions));
  g.slices = count;
  g.spacing[2] = gaps.extent / double(count - 1);
  g.decisions.push_back(fmt::format(
      "irregular slice gaps ({:.4g} to {:.4g} mm): {} slices resampled linearly along the normal "
      "onto {} slices {:.4g} mm apart",
      gaps.min, gaps.max, n_positions, count, g.spacing[2]));
}

// Spacing along the normal and the number of output slices, from the positions `s`.
void plan_slices(const std::vector<double>& s, const Frame& first, const LoadOptions& options, StackGeometry& g) {
  const std::size_t n_positions = s.size();
  if (n_positions == 1) {
    g.spacing[2] = first.spacing_between_slices > 0 ? first.spacing_between_slices
                   : first.slice_thickness > 0     ? first.slice_thickness
                                                   : 1.0;
    g.slices = 1;
    return;
  }
  const Gaps gaps = gaps_of(s);
  const double tolerance = std::max(options.spacing_tolerance * gaps.mean, 1e-3);
  const bool regular = gaps.max - gaps.mean <= tolerance && gaps.mean - gaps.min <= tolerance;
  if (regular) {
    g.spacing[2] = gaps.mean;
    g.slices = static_cast<int>(n_positions);
  } else if (options.irregular_spacing == IrregularSpacing::Refuse) {
    const std::size_t worst = gaps.widest;
    throw DicomError(fmt::format(
        "slices are not evenly spaced: gaps range from {:.4g} to {:.4g} mm (the largest, between "
        "slices {} and {} at {:.4g} and {:.4g} mm along the normal, suggests a missing slice); "
        "refusing to misplace voxels: allow resampling onto a uniform grid (--resample-irregular)",
        gaps.min, gaps.max, worst + 1, worst + 2, s[worst], s[worst + 1]));
  } else {
    resample_irregular(gaps, n_positions, g);
  }
}

// Sources of each output slice: the frame at that position, or the two around it when the
// slices are resampled along the normal.
void assign_sources(const std::vector<std::vector<std::size_t>>& clusters, const std::vector<double>& s,
                    const InPlaneShifts& shifts, StackGeometry& g) {
  const std::size_t n_positions = clusters.size();
  const bool interpolate = g.slices != static_cast<int>(n_positions);
  g.needs_resampling = interpolate || shifts.sheared;
  g.sources.assign(g.volumes, std::vector<std::vector<SliceSource>>(g.slices));
  auto source = [&](std::size_t position, int v, double weight) {
    return SliceSource{clusters[position][v], weight, shifts.columns[position], shifts.rows[position]};
  };
  for (int v = 0; v < g.volumes; ++v) {
    for (int k = 0; k < g.slices; ++k) {
      auto& out = g.sources[v][k];
      if (!interpolate) {
        out.push_back(source(k, v, 1.0));
        continue;
      }
      const double target = s.front() + k * g.spacing[2];
      std::size_t j = std::upper_bound(s.begin(), s.end(), target) - s.begin();
      j = std::clamp<std::size_t>(j, 1, n_positions - 1);
      const double t = std::clamp((target - s[j - 1]) / (s[j] - s[j - 1]), 0.0, 1.0);
      if (t < 1e-6) {
        out.push_back(source(j - 1, v, 1.0));
      } else if (t > 1 - 1e-6) {
        out.push_back(source(j, v, 1.0));
      } else {
        out.push_back(source(j - 1, v, 1 - t));
        out.push_back(source(j, v, t));
      }
    }
  }
}

}  // namespace

std::vector<std::vector<std::size_t>> position_clusters(const std::vector<Frame>& frames) {
  if (frames.empty()) return {};
  check_consistent_planes(frames);
  const Vec3 n = cross(row_of(frames.front()), col_of(frames.front()));
  std::vector<double> s(frames.size());
  for (std::size_t i = 0; i < frames.size(); ++i) s[i] = dot(frames[i].position, n);
  std::vector<std::size_t> order(frames.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    if (std::abs(s[a] - s[b]) >= kSamePositionMm) return s[a] < s[b];
    return time_key(frames[a]) < time_key(frames[b]);
  });
  std::vector<std::vector<std::size_t>> clusters;
  for (std::size_t idx : order) {
    if (clusters.empty() || std::abs(s[idx] - s[clusters.back().front()]) >= kSamePositionMm)
      clusters.push_back({});
    clusters.back().push_back(idx);
  }
  for (auto& c : clusters)
    std::stable_sort(c.begin(), c.end(),
                     [&](std::size_t a, std::size_t b) { return time_key(frames[a]) < time_key(frames[b]); });
  return clusters;
}

StackGeometry plan_geometry(const std::vector<Frame>& frames, const LoadOptions& options) {
  if (frames.empty()) throw DicomError("empty stack: nothing to load");
  const auto clusters = position_clusters(frames);
  const Frame& first = frames.front();

  StackGeometry g = plane_of(first);
  count_volumes(clusters, frames.size(), g);
  // Distance of each position along the normal.
  std::vector<double> s(clusters.size());
  for (std::size_t k = 0; k < clusters.size(); ++k) s[k] = dot(frames[clusters[k].front()].position, g.normal);
  g.origin = frames[clusters.front().front()].position;

  const InPlaneShifts shifts = in_plane_shifts(frames, clusters, g);
  if (shifts.sheared) note_gantry_tilt(frames[clusters.back().front()].position, first, g);
  plan_slices(s, first, options, g);
  assign_sources(clusters, s, shifts, g);
  return g;
}

}  // namespace sagitta::dicom::detail

// Geometry of loaded DICOM series, checked with synthetic series that carry bright markers at
// known physical (LPS, mm) points. Each series is written with DCMTK, scanned, loaded, written
// to NRRD and NIfTI, and read back with ITK's own reader; every marker must be found at its
// point using only the output's header. Bad input must end in DicomError, never a crash.
#include <gtest/gtest.h>

#include <optional>
#include <itkImage.h>
#include <itkImageFileReader.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/core/volume_io.h"
#include "support/synthetic_dicom.h"
#include "support/read_4d.h"
#include "support/test_paths.h"

namespace {

namespace fs = std::filesystem;
namespace sd = sagitta::dicom;
using sagitta::testing::Marker;
using sagitta::testing::Point;
using sagitta::testing::SeriesSpec;
using sagitta::testing::WrittenSeries;
using sagitta::testing::WrittenSlice;

using Image3 = itk::Image<float, 3>;
using Image4 = itk::Image<float, 4>;
using Vec = std::array<double, 3>;
using Index3 = std::array<long, 3>;

constexpr double kPi = 3.14159265358979323846;
constexpr const char* kExplicitLittle = "1.2.840.10008.1.2.1";
constexpr const char* kImplicitLittle = "1.2.840.10008.1.2";
constexpr const char* kBigEndian = "1.2.840.10008.1.2.2";
constexpr const char* kDeflate = "1.2.840.10008.1.2.1.99";
constexpr const char* kRle = "1.2.840.10008.1.2.5";

// ---------------------------------------------------------------------------------------------
// Small vector helpers

Vec add(const Vec& a, const Vec& b) { return {a[0] + b[0], a[1] + b[1], a[2] + b[2]}; }
Vec sub(const Vec& a, const Vec& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
Vec scale(const Vec& a, double s) { return {a[0] * s, a[1] * s, a[2] * s}; }
double dot(const Vec& a, const Vec& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double norm(const Vec& a) { return std::sqrt(dot(a, a)); }
Vec cross(const Vec& a, const Vec& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

std::string str(const Vec& v) {
  std::ostringstream out;
  out.precision(10);
  out << "(" << v[0] << ", " << v[1] << ", " << v[2] << ")";
  return out.str();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool contains_any(const std::string& text, const std::vector<std::string>& words) {
  const std::string l = lower(text);
  return std::any_of(words.begin(), words.end(),
                     [&](const std::string& w) { return l.find(w) != std::string::npos; });
}

// Rotation about LPS axis x, y or z (0, 1, 2) by `degrees`.
std::array<Vec, 3> rotation(int axis, double degrees) {
  const double a = degrees * kPi / 180.0, c = std::cos(a), s = std::sin(a);
  if (axis == 0) return {Vec{1, 0, 0}, Vec{0, c, -s}, Vec{0, s, c}};
  if (axis == 1) return {Vec{c, 0, s}, Vec{0, 1, 0}, Vec{-s, 0, c}};
  return {Vec{c, -s, 0}, Vec{s, c, 0}, Vec{0, 0, 1}};
}
Vec rotate(const std::array<Vec, 3>& m, const Vec& v) { return {dot(m[0], v), dot(m[1], v), dot(m[2], v)}; }

// ---------------------------------------------------------------------------------------------
// Specs

// A marker centred on voxel (column i, row j, slice k) of the spec's grid.
Marker marker_at(const SeriesSpec& spec, int i, int j, int k, double value, double radius = 2.5) {
  Marker m;
  m.lps = sagitta::testing::voxel_centre(spec, i, j, k);
  m.value = value;
  m.radius = radius;
  return m;
}

// A non-square grid with different row and column spacings (so transposed or swapped axes
// show), an origin far from zero, and four markers at asymmetric positions with distinct values
// (so flips and swaps show).
SeriesSpec base_spec() {
  SeriesSpec spec;
  spec.rows = 28;
  spec.columns = 36;
  spec.slices = 14;
  spec.pixel_spacing = {0.8, 1.1};  // between rows, between columns
  spec.slice_spacing = 2.0;
  spec.first_position = {-100.25, -80.5, 30.75};
  spec.background = 0.0;
  return spec;
}

void add_default_markers(SeriesSpec& spec, double radius = 2.5) {
  spec.markers = {marker_at(spec, 5, 7, 2, 1000, radius), marker_at(spec, 27, 5, 10, 1200, radius),
                  marker_at(spec, 14, 20, 5, 1400, radius),
                  marker_at(spec, 30, 21, 12, 1600, radius)};
}

// Where a point lies in the spec's source grid (continuous column, row, slice).
Vec source_index(const SeriesSpec& spec, const Point& q) {
  const Vec a = scale(sagitta::testing::row_direction(spec), spec.pixel_spacing[1]);
  const Vec b = scale(sagitta::testing::column_direction(spec), spec.pixel_spacing[0]);
  const Vec e = scale(sagitta::testing::slice_direction(spec), spec.slice_spacing);
  const Vec v = sub(q, spec.first_position);
  const double det = dot(a, cross(b, e));
  return {dot(v, cross(b, e)) / det, dot(a, cross(v, e)) / det, dot(a, cross(b, v)) / det};
}

bool inside_source(const SeriesSpec& spec, const Point& q, double margin) {
  const Vec s = source_index(spec, q);
  return s[0] >= margin && s[0] <= spec.columns - 1 - margin && s[1] >= margin &&
         s[1] <= spec.rows - 1 - margin && s[2] >= margin && s[2] <= spec.slices - 1 - margin;
}

double extent(const Marker& m) {
  return std::max({m.radius, m.semi_axes[0], m.semi_axes[1], m.semi_axes[2]});
}

// ---------------------------------------------------------------------------------------------
// Views of an output volume through its own header

// What check_markers needs from an image: physical point -> continuous index, voxel values,
// voxel centres.
class View {
public:
  virtual ~View() = default;
  virtual Vec continuous_index(const Point& p) const = 0;
  virtual bool inside(const Index3& idx) const = 0;
  virtual double value(const Index3& idx) const = 0;
  virtual Point centre(const Index3& idx) const = 0;
};

class View3 : public View {
public:
  explicit View3(const Image3* image) : image_(image) {}
  Vec continuous_index(const Point& p) const override {
    Image3::PointType point;
    for (int a = 0; a < 3; ++a) point[a] = p[a];
    const auto ci = image_->TransformPhysicalPointToContinuousIndex<double>(point);
    return {ci[0], ci[1], ci[2]};
  }
  bool inside(const Index3& idx) const override {
    return image_->GetBufferedRegion().IsInside(to_itk(idx));
  }
  double value(const Index3& idx) const override { return image_->GetPixel(to_itk(idx)); }
  Point centre(const Index3& idx) const override {
    Image3::PointType point;
    image_->TransformIndexToPhysicalPoint(to_itk(idx), point);
    return {point[0], point[1], point[2]};
  }

private:
  static Image3::IndexType to_itk(const Index3& idx) {
    Image3::IndexType i;
    for (int a = 0; a < 3; ++a) i[a] = idx[a];
    return i;
  }
  const Image3* image_;
};

// One time point of a 4D image: the spatial part of its header (origin, spacing and the upper
// left 3x3 of the direction) places the first three axes.
class View4 : public View {
public:
  View4(const Image4* image, long t) : image_(image), t_(t) {
    const auto& d = image->GetDirection();
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) dir_[r][c] = d[r][c];
    // inverse of the 3x3 by cofactors
    const double det = dir_[0][0] * (dir_[1][1] * dir_[2][2] - dir_[1][2] * dir_[2][1]) -
                       dir_[0][1] * (dir_[1][0] * dir_[2][2] - dir_[1][2] * dir_[2][0]) +
                       dir_[0][2] * (dir_[1][0] * dir_[2][1] - dir_[1][1] * dir_[2][0]);
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) {
        const int r1 = (c + 1) % 3, r2 = (c + 2) % 3, c1 = (r + 1) % 3, c2 = (r + 2) % 3;
        inv_[r][c] = (dir_[r1][c1] * dir_[r2][c2] - dir_[r1][c2] * dir_[r2][c1]) / det;
      }
  }
  Vec continuous_index(const Point& p) const override {
    const auto& o = image_->GetOrigin();
    const auto& s = image_->GetSpacing();
    Vec v{p[0] - o[0], p[1] - o[1], p[2] - o[2]}, ci{};
    for (int r = 0; r < 3; ++r) ci[r] = dot(inv_[r], v) / s[r];
    return ci;
  }
  bool inside(const Index3& idx) const override {
    return image_->GetBufferedRegion().IsInside(to_itk(idx));
  }
  double value(const Index3& idx) const override { return image_->GetPixel(to_itk(idx)); }
  Point centre(const Index3& idx) const override {
    const auto& o = image_->GetOrigin();
    const auto& s = image_->GetSpacing();
    Point p{o[0], o[1], o[2]};
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 3; ++c) p[r] += dir_[r][c] * idx[c] * s[c];
    return p;
  }

private:
  Image4::IndexType to_itk(const Index3& idx) const {
    Image4::IndexType i;
    for (int a = 0; a < 3; ++a) i[a] = idx[a];
    i[3] = t_;
    return i;
  }
  const Image4* image_;
  long t_;
  std::array<Vec, 3> dir_{}, inv_{};
};

struct CheckOptions {
  bool resampled = false;  // the output grid is not the source grid (gap filled, tilt removed)
  double value_tolerance = 0.0;  // exact unless resampled
  int time_point = 0;
};

// Every marker: the voxel at its rounded continuous index holds the marker's value (and the
// continuous index is an integer to 1e-3 voxel unless resampled); a voxel several mm away,
// far from every marker and inside the source data, holds the background.
void check_markers(const View& view, const SeriesSpec& spec, const CheckOptions& opt) {
  ASSERT_FALSE(spec.markers.empty());
  double max_spacing = std::max({spec.pixel_spacing[0], spec.pixel_spacing[1], spec.slice_spacing});
  for (std::size_t m = 0; m < spec.markers.size(); ++m) {
    const Marker& marker = spec.markers[m];
    SCOPED_TRACE("marker " + std::to_string(m) + " at " + str(marker.lps) + " value " +
                 std::to_string(marker.value) + " (time point " +
                 std::to_string(marker.time_point) + ")");
    const Vec ci = view.continuous_index(marker.lps);
    Index3 idx{};
    for (int a = 0; a < 3; ++a) idx[a] = std::lround(ci[a]);
    ASSERT_TRUE(view.inside(idx)) << "continuous index " << str(ci) << " is outside the image";
    if (!opt.resampled) {
      for (int a = 0; a < 3; ++a) {
        EXPECT_NEAR(ci[a], static_cast<double>(idx[a]), 1e-3)
            << "axis " << a << ": the marker is not on a voxel centre, continuous index "
            << str(ci);
      }
    }
    const double expected = sagitta::testing::value_at(spec, marker.lps, opt.time_point);
    EXPECT_NEAR(view.value(idx), expected, opt.value_tolerance)
        << "at index (" << idx[0] << ", " << idx[1] << ", " << idx[2] << "), continuous "
        << str(ci);

    // The marker's centre of mass (weights: value above background, as a fraction of the
    // marker's) is at its point: exactly on the source grid, and still when the data were
    // resampled by linear interpolation, which keeps first moments.
    if (expected == marker.value && marker.value != spec.background) {
      const double half = extent(marker) + 1.5 * max_spacing;
      Index3 lo{LONG_MAX, LONG_MAX, LONG_MAX}, hi{LONG_MIN, LONG_MIN, LONG_MIN};
      for (int corner = 0; corner < 8; ++corner) {
        const Point q{marker.lps[0] + ((corner & 1) ? half : -half),
                      marker.lps[1] + ((corner & 2) ? half : -half),
                      marker.lps[2] + ((corner & 4) ? half : -half)};
        const Vec cq = view.continuous_index(q);
        for (int a = 0; a < 3; ++a) {
          lo[a] = std::min(lo[a], static_cast<long>(std::floor(cq[a])));
          hi[a] = std::max(hi[a], static_cast<long>(std::ceil(cq[a])));
        }
      }
      for (const Marker& other : spec.markers)
        if (&other != &marker && norm(sub(other.lps, marker.lps)) < half + extent(other))
          ADD_FAILURE() << "test setup: another marker at " << str(other.lps) << " is too close";
      const double support = extent(marker) + (opt.resampled ? max_spacing : 0.0);
      double mass = 0.0;
      Vec moment{0, 0, 0};
      Index3 v{};
      for (v[2] = lo[2]; v[2] <= hi[2]; ++v[2])
        for (v[1] = lo[1]; v[1] <= hi[1]; ++v[1])
          for (v[0] = lo[0]; v[0] <= hi[0]; ++v[0]) {
            const Point centre = view.centre(v);
            const double r = norm(sub(centre, marker.lps));
            if (r > half) continue;
            if (!view.inside(v)) {
              if (r < support && inside_source(spec, centre, -0.5))
                ADD_FAILURE() << "test setup: the marker is clipped by the image's edge at "
                              << str(centre);
              continue;
            }
            const double w = (view.value(v) - spec.background) / (marker.value - spec.background);
            mass += w;
            moment = add(moment, scale(centre, w));
          }
      ASSERT_GT(mass, 0.0) << "the marker is missing";
      const Vec centroid = scale(moment, 1.0 / mass);
      EXPECT_LT(norm(sub(centroid, marker.lps)), opt.resampled ? 0.02 : 1e-4)
          << "the marker's centre of mass is at " << str(centroid);
    }

    // Background a few mm away, in whichever direction stays inside the data.
    const double distance = extent(marker) + 3.0 + 2.0 * max_spacing;
    const std::vector<Vec> directions{
        sagitta::testing::row_direction(spec),    scale(sagitta::testing::row_direction(spec), -1),
        sagitta::testing::column_direction(spec), scale(sagitta::testing::column_direction(spec), -1),
        sagitta::testing::normal_direction(spec), scale(sagitta::testing::normal_direction(spec), -1),
        Vec{1, 0, 0}, Vec{-1, 0, 0}, Vec{0, 1, 0}, Vec{0, -1, 0}, Vec{0, 0, 1}, Vec{0, 0, -1}};
    int backgrounds = 0;
    for (const Vec& d : directions) {
      if (backgrounds >= 2) break;
      const Point far = add(marker.lps, scale(d, distance));
      const Vec fci = view.continuous_index(far);
      Index3 fidx{};
      for (int a = 0; a < 3; ++a) fidx[a] = std::lround(fci[a]);
      if (!view.inside(fidx)) continue;
      const Point centre = view.centre(fidx);
      if (!inside_source(spec, centre, 1.0)) continue;
      bool clear = true;
      for (const Marker& other : spec.markers)
        if (norm(sub(centre, other.lps)) < extent(other) + 2.0 * max_spacing) clear = false;
      if (!clear) continue;
      ++backgrounds;
      EXPECT_NEAR(view.value(fidx), spec.background, opt.value_tolerance)
          << "background expected at " << str(centre) << ", index (" << fidx[0] << ", "
          << fidx[1] << ", " << fidx[2] << ")";
    }
    EXPECT_GT(backgrounds, 0) << "no background voxel found near the marker (test setup)";
  }
}

// In-plane axes follow DICOM's row and column directions with the DICOM pixel spacings;
// the third axis is along the slice normal (either way).
struct GridExpect {
  bool check_size = true;
  bool check_slice_spacing = true;
  double slice_spacing = 0;  // along the normal; 0: the spec's slice spacing
};

template <typename ImageT>
void check_grid(const ImageT& image, const SeriesSpec& spec, const GridExpect& g) {
  const auto& spacing = image.GetSpacing();
  const auto& dir = image.GetDirection();
  const auto size = image.GetLargestPossibleRegion().GetSize();
  const Vec r = sagitta::testing::row_direction(spec), c = sagitta::testing::column_direction(spec),
            n = sagitta::testing::normal_direction(spec);
  EXPECT_NEAR(spacing[0], spec.pixel_spacing[1], 1e-4) << "x spacing = between columns";
  EXPECT_NEAR(spacing[1], spec.pixel_spacing[0], 1e-4) << "y spacing = between rows";
  if (g.check_slice_spacing) {
    EXPECT_NEAR(spacing[2], g.slice_spacing > 0 ? g.slice_spacing : spec.slice_spacing, 1e-4);
  }
  for (int a = 0; a < 3; ++a) {
    EXPECT_NEAR(dir[a][0], r[a], 1e-5) << "direction column 0 = DICOM row direction";
    EXPECT_NEAR(dir[a][1], c[a], 1e-5) << "direction column 1 = DICOM column direction";
  }
  const Vec third{dir[0][2], dir[1][2], dir[2][2]};
  EXPECT_NEAR(std::abs(dot(third, n)), 1.0, 1e-5) << "third axis " << str(third)
                                                  << " is not along the normal " << str(n);
  if (g.check_size) {
    EXPECT_EQ(size[0], static_cast<unsigned long>(spec.columns));
    EXPECT_EQ(size[1], static_cast<unsigned long>(spec.rows));
    EXPECT_EQ(size[2], static_cast<unsigned long>(spec.slices));
  }
}

// info.slices[v][z] names the written slice at output slice z: the one whose position lies
// on that output slice (exactly, unless resampled: then one of the nearest along the normal).
void check_slice_sources(const sd::LoadedSeries& loaded, std::size_t v, const WrittenSeries& written,
                         const SeriesSpec& spec, bool resampled) {
  ASSERT_LT(v, loaded.info.slices.size()) << "SeriesInfo.slices has no entry for volume " << v;
  const Image3& image = *loaded.volumes[v];
  const auto& sources = loaded.info.slices[v];
  const auto nz = image.GetLargestPossibleRegion().GetSize()[2];
  ASSERT_EQ(sources.size(), nz) << "one source per output slice";
  const Vec n = sagitta::testing::normal_direction(spec);
  for (unsigned long z = 0; z < nz; ++z) {
    Image3::IndexType idx{{0, 0, static_cast<long>(z)}};
    Image3::PointType p;
    image.TransformIndexToPhysicalPoint(idx, p);
    const Point point{p[0], p[1], p[2]};
    double best = 1e300;
    for (const WrittenSlice& w : written.slices)
      if (w.time_point == static_cast<int>(v)) best = std::min(best, std::abs(dot(sub(point, w.position), n)));
    if (!resampled) {
      EXPECT_LT(best, 1e-3) << "output slice " << z << " matches no written slice";
    }
    bool found = false;
    for (const WrittenSlice& w : written.slices) {
      if (w.time_point != static_cast<int>(v)) continue;
      if (std::abs(dot(sub(point, w.position), n)) > best + 1e-3) continue;
      if (w.sop_instance_uid == sources[z].sop_instance_uid && w.frame == sources[z].frame)
        found = true;
    }
    EXPECT_TRUE(found) << "output slice " << z << " (at " << str(point)
                       << ") lists source " << sources[z].sop_instance_uid << " frame "
                       << sources[z].frame << ", which is not the slice written there";
  }
}

Image3::Pointer read3(const fs::path& path) {
  auto reader = itk::ImageFileReader<Image3>::New();
  reader->SetFileName(path.string());
  reader->Update();
  return reader->GetOutput();
}

Image4::Pointer read4(const fs::path& path) { return sagitta::testing::read_4d(path); }

struct Expect {
  CheckOptions check;
  GridExpect grid;
  std::size_t volumes = 1;
  std::optional<sd::IntegerType> integer_type;  // checked when set
};

// The integer load path must give exactly the float path's values and geometry.
template <typename TPixel>
void expect_same_as_float(const sd::Stack& stack, const sd::LoadOptions& options, const sd::LoadedSeries& loaded) {
  const auto typed = sd::load_as<TPixel>(stack, options);
  ASSERT_EQ(typed.volumes.size(), loaded.volumes.size());
  for (std::size_t v = 0; v < typed.volumes.size(); ++v) {
    const auto& a = *typed.volumes[v];
    const auto& b = *loaded.volumes[v];
    ASSERT_EQ(a.GetLargestPossibleRegion(), b.GetLargestPossibleRegion());
    EXPECT_EQ(a.GetOrigin(), b.GetOrigin());
    EXPECT_EQ(a.GetSpacing(), b.GetSpacing());
    EXPECT_EQ(a.GetDirection(), b.GetDirection());
    std::size_t different = 0;
    for (std::size_t i = 0; i < a.GetLargestPossibleRegion().GetNumberOfPixels(); ++i)
      different += double(a.GetBufferPointer()[i]) != double(b.GetBufferPointer()[i]);
    EXPECT_EQ(different, 0u) << "integer and float loads differ";
  }
}

// Checks a loaded series in memory, then written to .nrrd and .nii.gz and read back by ITK.
void verify_loaded(const sd::LoadedSeries& loaded, const SeriesSpec& spec,
                   const WrittenSeries& written, const fs::path& out_dir, const Expect& e) {
  ASSERT_EQ(loaded.volumes.size(), e.volumes);
  for (std::size_t v = 0; v < loaded.volumes.size(); ++v) {
    SCOPED_TRACE("volume " + std::to_string(v));
    ASSERT_TRUE(loaded.volumes[v]);
    CheckOptions opt = e.check;
    opt.time_point = static_cast<int>(v);
    {
      SCOPED_TRACE("in memory");
      check_grid(*loaded.volumes[v], spec, e.grid);
      check_markers(View3(loaded.volumes[v].GetPointer()), spec, opt);
      check_slice_sources(loaded, v, written, spec, e.check.resampled);
    }
    for (const char* ext : {".nrrd", ".nii.gz"}) {
      const fs::path out = out_dir / ("volume" + std::to_string(v) + ext);
      SCOPED_TRACE(out.string());
      ASSERT_NO_THROW(sagitta::write_volumes({loaded.volumes[v]}, out, sagitta::WriteOptions{}));
      ASSERT_TRUE(fs::exists(out));
      Image3::Pointer image;
      ASSERT_NO_THROW(image = read3(out));
      check_grid(*image, spec, e.grid);
      check_markers(View3(image.GetPointer()), spec, opt);
    }
  }
  if (loaded.volumes.size() > 1) {
    for (const char* ext : {".nrrd", ".nii.gz"}) {
      const fs::path out = out_dir / (std::string("all_volumes") + ext);
      SCOPED_TRACE(out.string());
      ASSERT_NO_THROW(sagitta::write_volumes(loaded.volumes, out, sagitta::WriteOptions{}));
      Image4::Pointer image;
      ASSERT_NO_THROW(image = read4(out));
      ASSERT_EQ(image->GetLargestPossibleRegion().GetSize()[3], loaded.volumes.size());
      for (int a = 0; a < 3; ++a) {
        EXPECT_NEAR(image->GetDirection()[a][3], 0.0, 1e-9);
        EXPECT_NEAR(image->GetDirection()[3][a], 0.0, 1e-9);
      }
      for (std::size_t v = 0; v < loaded.volumes.size(); ++v) {
        SCOPED_TRACE("4D, time point " + std::to_string(v));
        CheckOptions opt = e.check;
        opt.time_point = static_cast<int>(v);
        check_markers(View4(image.GetPointer(), static_cast<long>(v)), spec, opt);
      }
    }
  }
}

const sd::Stack* single_stack(const sd::ScanResult& scan) {
  EXPECT_EQ(scan.stacks.size(), 1u);
  return scan.stacks.empty() ? nullptr : &scan.stacks.front();
}

// Writes `spec` into a fresh folder, scans it (one stack expected), loads and verifies.
void run_round_trip(SeriesSpec spec, const Expect& e = {}, const sd::LoadOptions& options = {},
                    sd::LoadedSeries* loaded_out = nullptr, WrittenSeries* written_out = nullptr) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const fs::path in = dir / "in", out = dir / "out";
  fs::create_directories(out);
  const WrittenSeries written = sagitta::testing::write_series_detailed(spec, in);
  sd::ScanResult scan;
  ASSERT_NO_THROW(scan = sd::scan({in}));
  const sd::Stack* stack = single_stack(scan);
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(stack->frames.size(), written.slices.size());
  sd::LoadedSeries loaded;
  try {
    loaded = sd::load(*stack, options);
  } catch (const std::exception& ex) {
    FAIL() << "load threw: " << ex.what();
  }
  verify_loaded(loaded, spec, written, out, e);
  const sd::IntegerType integer = sd::exact_integer_type(*stack, options);
  if (e.integer_type) {
    EXPECT_EQ(integer, *e.integer_type);
  }
  switch (integer) {
    case sd::IntegerType::Int16: expect_same_as_float<std::int16_t>(*stack, options, loaded); break;
    case sd::IntegerType::UInt16: expect_same_as_float<std::uint16_t>(*stack, options, loaded); break;
    case sd::IntegerType::Int32: expect_same_as_float<std::int32_t>(*stack, options, loaded); break;
    case sd::IntegerType::None: EXPECT_THROW(sd::load_as<std::int16_t>(*stack, options), sd::DicomError); break;
  }
  if (loaded_out) *loaded_out = loaded;
  if (written_out) *written_out = written;
}

bool any_decision(const std::vector<sd::Decision>& decisions, const std::vector<std::string>& words) {
  return std::any_of(decisions.begin(), decisions.end(), [&](const sd::Decision& d) {
    return contains_any(d.what, words) || contains_any(d.subject, words);
  });
}

std::string all_decisions(const std::vector<sd::Decision>& decisions) {
  std::string s;
  for (const auto& d : decisions) s += "\n  [" + d.subject + "] " + d.what;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Orientations

TEST(SyntheticGeometry, Axial) {
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  sd::LoadedSeries loaded;
  WrittenSeries written;
  Expect e;
  e.integer_type = sd::IntegerType::Int16;
  run_round_trip(spec, e, {}, &loaded, &written);
  // Descriptors a derived object copies.
  EXPECT_EQ(loaded.info.patient_name, "Synthetic^Phantom");
  EXPECT_EQ(loaded.info.patient_id, "SYN0001");
  EXPECT_EQ(loaded.info.modality, "CT");
  EXPECT_EQ(loaded.info.series_number, "1");
  EXPECT_EQ(loaded.info.series_instance_uid, written.series_instance_uid);
  EXPECT_EQ(loaded.info.study_instance_uid, written.study_instance_uid);
  EXPECT_EQ(loaded.info.frame_of_reference_uid, written.frame_of_reference_uid);
  EXPECT_EQ(loaded.info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
}

TEST(SyntheticGeometry, ObliqueMr) {
  SeriesSpec spec = base_spec();
  // Rotated 20 degrees about x, then 20 degrees about y.
  const auto rx = rotation(0, 20), ry = rotation(1, 20);
  const Vec r = rotate(rx, rotate(ry, {1, 0, 0})), c = rotate(rx, rotate(ry, {0, 1, 0}));
  spec.orientation = {r[0], r[1], r[2], c[0], c[1], c[2]};
  spec.modality = "MR";
  spec.first_position = {-40.3, -25.7, 12.9};
  add_default_markers(spec);
  sd::LoadedSeries loaded;
  run_round_trip(spec, {}, {}, &loaded);
  EXPECT_EQ(loaded.info.modality, "MR");
  EXPECT_EQ(loaded.info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.4");
}

TEST(SyntheticGeometry, SagittalAscendingLeft) {
  SeriesSpec spec = base_spec();
  spec.orientation = {0, 1, 0, 0, 0, -1};  // rows go posterior, columns go down
  spec.slice_direction = {1, 0, 0};        // slices advance to the left: opposite the normal
  spec.first_position = {-20.5, -90.0, 60.25};
  add_default_markers(spec);
  run_round_trip(spec);
}

TEST(SyntheticGeometry, Coronal) {
  SeriesSpec spec = base_spec();
  spec.orientation = {1, 0, 0, 0, 0, -1};
  spec.first_position = {-90.0, 10.5, 50.0};
  add_default_markers(spec);
  run_round_trip(spec);
}

TEST(SyntheticGeometry, ShuffledFileNamesReversedInstanceNumbers) {
  SeriesSpec spec = base_spec();
  spec.slice_direction = {0, 0, -1};  // written head to feet
  spec.shuffle_file_names = true;
  add_default_markers(spec);
  run_round_trip(spec);
}

// ---------------------------------------------------------------------------------------------
// Series selection and splitting

TEST(SyntheticGeometry, TwoSeriesInOneFolder) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec one = base_spec();
  add_default_markers(one);
  one.series_number = 1;
  one.file_prefix = "one";
  const WrittenSeries w1 = sagitta::testing::write_series_detailed(one, dir / "in");
  SeriesSpec two = base_spec();
  two.rows = 20;
  two.columns = 22;
  two.slices = 10;
  two.orientation = {1, 0, 0, 0, 0, -1};
  two.first_position = {-12, 3.5, 40};
  two.markers = {marker_at(two, 4, 5, 3, 800), marker_at(two, 17, 14, 7, 900)};
  two.series_number = 2;
  two.study_instance_uid = w1.study_instance_uid;
  two.frame_of_reference_uid = w1.frame_of_reference_uid;
  two.file_prefix = "two";
  const WrittenSeries w2 = sagitta::testing::write_series_detailed(two, dir / "in");

  sd::ScanResult scan;
  ASSERT_NO_THROW(scan = sd::scan({dir / "in"}));
  ASSERT_EQ(scan.stacks.size(), 2u);
  const sd::Stack& s2 = sd::select_stack(scan, "2");
  EXPECT_EQ(s2.info.series_number, "2");
  EXPECT_EQ(s2.info.series_instance_uid, w2.series_instance_uid);
  EXPECT_EQ(s2.frames.size(), 10u);
  const sd::Stack& s1 = sd::select_stack(scan, "1");
  EXPECT_EQ(s1.info.series_instance_uid, w1.series_instance_uid);
  EXPECT_EQ(s1.frames.size(), 14u);
  EXPECT_EQ(&sd::select_stack(scan, w2.series_instance_uid), &s2);
  EXPECT_THROW(sd::select_stack(scan, "7"), sd::DicomError);

  fs::create_directories(dir / "out1");
  fs::create_directories(dir / "out2");
  {
    SCOPED_TRACE("series 1");
    verify_loaded(sd::load(s1), one, w1, dir / "out1", {});
  }
  {
    SCOPED_TRACE("series 2");
    verify_loaded(sd::load(s2), two, w2, dir / "out2", {});
  }
}

TEST(SyntheticGeometry, LocalizerInsideSeriesGetsItsOwnStack) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec main = base_spec();
  add_default_markers(main);
  const WrittenSeries wm = sagitta::testing::write_series_detailed(main, dir / "in");
  SeriesSpec scout;  // three coronal frames of another size, same series
  scout.rows = 40;
  scout.columns = 48;
  scout.slices = 3;
  scout.pixel_spacing = {1.5, 1.5};
  scout.slice_spacing = 10;
  scout.orientation = {1, 0, 0, 0, 0, -1};
  scout.first_position = {-110, -70, 70};
  scout.markers = {marker_at(scout, 10, 10, 1, 500)};
  scout.image_type = "ORIGINAL\\PRIMARY\\LOCALIZER";
  scout.series_instance_uid = wm.series_instance_uid;
  scout.study_instance_uid = wm.study_instance_uid;
  scout.frame_of_reference_uid = wm.frame_of_reference_uid;
  scout.file_prefix = "scout";
  sagitta::testing::write_series_detailed(scout, dir / "in");

  sd::ScanResult scan;
  ASSERT_NO_THROW(scan = sd::scan({dir / "in"}));
  ASSERT_EQ(scan.stacks.size(), 2u) << all_decisions(scan.decisions);
  const sd::Stack* axial = nullptr;
  const sd::Stack* localizer = nullptr;
  for (const auto& s : scan.stacks) {
    EXPECT_EQ(s.info.series_instance_uid, wm.series_instance_uid);
    if (s.frames.size() == 14) axial = &s;
    if (s.frames.size() == 3) localizer = &s;
  }
  ASSERT_NE(axial, nullptr) << "no stack holds exactly the 14 axial slices";
  ASSERT_NE(localizer, nullptr) << "no stack holds exactly the 3 localizer frames";
  for (const auto& f : axial->frames) EXPECT_FALSE(f.localizer) << f.path;
  for (const auto& f : localizer->frames) EXPECT_TRUE(f.localizer) << f.path;
  EXPECT_TRUE(!axial->split_reason.empty() || !localizer->split_reason.empty())
      << "a split series must say why it was split";
  fs::create_directories(dir / "out");
  verify_loaded(sd::load(*axial), main, wm, dir / "out", {});
}

TEST(SyntheticGeometry, InconsistentOrientationIsSplitOrRefused) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec a = base_spec();
  a.slices = 7;
  add_default_markers(a);
  a.markers.resize(1);
  a.file_prefix = "a";
  const WrittenSeries wa = sagitta::testing::write_series_detailed(a, dir / "in");
  SeriesSpec b = base_spec();
  b.slices = 7;
  const auto rx = rotation(0, 10);
  const Vec c = rotate(rx, {0, 1, 0});
  b.orientation = {1, 0, 0, c[0], c[1], c[2]};  // tilted 10 degrees: not the same stack
  b.first_position = {a.first_position[0], a.first_position[1], a.first_position[2] + 14};
  b.series_instance_uid = wa.series_instance_uid;
  b.study_instance_uid = wa.study_instance_uid;
  b.frame_of_reference_uid = wa.frame_of_reference_uid;
  b.file_prefix = "b";
  sagitta::testing::write_series_detailed(b, dir / "in");

  sd::ScanResult scan;
  ASSERT_NO_THROW(scan = sd::scan({dir / "in"}));
  if (scan.stacks.size() >= 2) {
    bool reason = false;
    for (const auto& s : scan.stacks) {
      reason = reason || !s.split_reason.empty();
      ASSERT_FALSE(s.frames.empty());
      for (const auto& f : s.frames)
        for (int q = 0; q < 6; ++q)
          EXPECT_NEAR(f.orientation[q], s.frames.front().orientation[q], 1e-4)
              << "stack " << s.id << " mixes orientations (" << f.path << ")";
    }
    EXPECT_TRUE(reason) << "a split series must say why it was split";
  } else {
    ASSERT_EQ(scan.stacks.size(), 1u);
    EXPECT_THROW(sd::load(scan.stacks.front()), sd::DicomError)
        << "one stack mixing two orientations must be refused";
  }
}

// ---------------------------------------------------------------------------------------------
// Spacing

TEST(SyntheticGeometry, MissingSliceIsRefusedByDefault) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  spec.skip_slices = {6};
  sagitta::testing::write_series(spec, dir);
  sd::ScanResult scan;
  ASSERT_NO_THROW(scan = sd::scan({dir}));
  const sd::Stack* stack = single_stack(scan);
  ASSERT_NE(stack, nullptr);
  EXPECT_EQ(stack->frames.size(), 13u);
  try {
    sd::load(*stack);
    ADD_FAILURE() << "a series with a missing slice loaded without complaint";
  } catch (const sd::DicomError& e) {
    EXPECT_TRUE(contains_any(e.what(), {"gap", "missing"}))
        << "the message should mention the gap: " << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected DicomError, got: " << e.what();
  }
}

TEST(SyntheticGeometry, MissingSliceResampled) {
  SeriesSpec spec = base_spec();
  // Large markers so that linear interpolation across the 4 mm gap stays inside them; one sits
  // on the missing slice itself.
  spec.markers = {marker_at(spec, 5, 7, 2, 1000, 4.5), marker_at(spec, 18, 14, 6, 1200, 4.5),
                  marker_at(spec, 29, 21, 11, 1400, 4.5)};
  spec.skip_slices = {6};
  Expect e;
  e.check.resampled = true;
  e.check.value_tolerance = 1e-2;
  sd::LoadOptions options;
  options.irregular_spacing = sd::IrregularSpacing::Resample;
  sd::LoadedSeries loaded;
  run_round_trip(spec, e, options, &loaded);
  EXPECT_FALSE(loaded.decisions.empty()) << "resampling must be reported";
  EXPECT_TRUE(any_decision(loaded.decisions, {"resampl", "interpol", "gap", "missing"}))
      << all_decisions(loaded.decisions);
}

// ---------------------------------------------------------------------------------------------
// Pixel values

TEST(SyntheticGeometry, RescaleSlopeAndIntercept) {
  SeriesSpec spec = base_spec();
  spec.rescale_slope = 2.5;
  spec.rescale_intercept = -1024;
  spec.background = -1024;  // stored 0
  add_default_markers(spec);
  spec.markers[0].value = 1476;     // stored 1000
  spec.markers[1].value = 476;      // stored 600
  spec.markers[2].value = -1021.5;  // stored 1: not an integer in output units
  spec.markers[3].value = 3976;     // stored 2000
  Expect e;
  e.integer_type = sd::IntegerType::None;  // slope 2.5 makes some values fractional
  run_round_trip(spec, e);
}

TEST(SyntheticGeometry, Monochrome1) {
  SeriesSpec spec = base_spec();
  spec.monochrome1 = true;
  spec.pixel_signed = false;
  spec.background = 100;
  add_default_markers(spec);
  spec.markers[3].value = 4000;
  run_round_trip(spec);
}

TEST(SyntheticGeometry, Unsigned16Bit) {
  SeriesSpec spec = base_spec();
  spec.pixel_signed = false;
  spec.background = 7;
  add_default_markers(spec);
  spec.markers[0].value = 40000;  // beyond int16
  spec.markers[1].value = 65535;
  spec.markers[2].value = 0;
  spec.markers[3].value = 32768;
  Expect e;
  e.integer_type = sd::IntegerType::UInt16;
  run_round_trip(spec, e);
}

TEST(SyntheticGeometry, Signed12BitsStored) {
  SeriesSpec spec = base_spec();
  spec.bits_stored = 12;
  spec.background = -2048;
  add_default_markers(spec);
  spec.markers[0].value = 2047;
  spec.markers[1].value = -1;
  spec.markers[2].value = -2000;
  spec.markers[3].value = 1024;
  Expect e;
  e.integer_type = sd::IntegerType::Int16;
  run_round_trip(spec, e);
}

// ---------------------------------------------------------------------------------------------
// Transfer syntaxes

class TransferSyntaxTest : public ::testing::TestWithParam<const char*> {};

TEST_P(TransferSyntaxTest, MarkersAtTheirPoints) {
  SeriesSpec spec = base_spec();
  spec.transfer_syntax = GetParam();
  spec.background = -1000;  // negative stored values must survive byte swapping and deflate
  add_default_markers(spec);
  spec.markers[1].value = -300;
  const fs::path dir = sagitta::testing::scratch_dir();
  const WrittenSeries written = sagitta::testing::write_series_detailed(spec, dir / "in");
  sd::ScanResult scan;
  ASSERT_NO_THROW(scan = sd::scan({dir / "in"}));
  const sd::Stack* stack = single_stack(scan);
  ASSERT_NE(stack, nullptr);
  for (const auto& f : stack->frames) EXPECT_EQ(f.transfer_syntax_uid, GetParam()) << f.path;
  fs::create_directories(dir / "out");
  sd::LoadedSeries loaded;
  try {
    loaded = sd::load(*stack);
  } catch (const std::exception& e) {
    FAIL() << "load threw: " << e.what();
  }
  verify_loaded(loaded, spec, written, dir / "out", {});
}

std::string syntax_name(const ::testing::TestParamInfo<const char*>& info) {
  const std::string uid = info.param;
  if (uid == kExplicitLittle) return "ExplicitLittleEndian";
  if (uid == kImplicitLittle) return "ImplicitLittleEndian";
  if (uid == kBigEndian) return "ExplicitBigEndian";
  if (uid == kDeflate) return "Deflate";
  if (uid == kRle) return "RLE";
  return "Other";
}

INSTANTIATE_TEST_SUITE_P(SyntheticGeometry, TransferSyntaxTest,
                         ::testing::Values(kExplicitLittle, kImplicitLittle, kBigEndian, kDeflate,
                                           kRle),
                         syntax_name);

// ---------------------------------------------------------------------------------------------
// Gantry tilt, multi-frame, multi-volume

TEST(SyntheticGeometry, GantryTiltIsRemovedKeepingPhysicalPositions) {
  SeriesSpec spec = base_spec();
  spec.rows = 48;
  spec.columns = 48;
  spec.slices = 20;
  spec.pixel_spacing = {1.0, 1.0};
  spec.first_position = {-24, -24, -10};
  const double tilt = 15.0 * kPi / 180.0;
  // Slices advance along the normal tilted 15 degrees towards the column direction (+y).
  spec.slice_direction = {0, std::sin(tilt), std::cos(tilt)};
  spec.gantry_tilt_degrees = 15;
  spec.markers = {marker_at(spec, 10, 10, 4, 1000, 4), marker_at(spec, 36, 20, 14, 1200, 4),
                  marker_at(spec, 14, 34, 10, 1400, 4)};
  Expect e;
  e.check.resampled = true;
  e.check.value_tolerance = 1e-2;
  e.grid.check_size = false;
  e.grid.slice_spacing = spec.slice_spacing * std::cos(tilt);  // distance between the planes
  sd::LoadedSeries loaded;
  run_round_trip(spec, e, {}, &loaded);
  EXPECT_TRUE(any_decision(loaded.decisions, {"tilt"}))
      << "the tilt correction must be reported:" << all_decisions(loaded.decisions);
}

TEST(SyntheticGeometry, MultiFrameEnhancedCt) {
  SeriesSpec spec = base_spec();
  const auto rz = rotation(2, 20);
  const Vec r = rotate(rz, {1, 0, 0}), c = rotate(rz, {0, 1, 0});
  spec.orientation = {r[0], r[1], r[2], c[0], c[1], c[2]};
  spec.multiframe = true;
  spec.shuffle_file_names = true;  // frames stored in reverse order
  spec.rescale_intercept = -1024;
  spec.background = -1000;
  add_default_markers(spec);
  sd::LoadedSeries loaded;
  WrittenSeries written;
  Expect e;
  // Signed 16 stored bits shifted by -1024 need 32 bits to hold every possible value.
  e.integer_type = sd::IntegerType::Int32;
  run_round_trip(spec, e, {}, &loaded, &written);
  EXPECT_EQ(written.files.size(), 1u);
  EXPECT_EQ(loaded.info.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2.1");
  for (const auto& per_volume : loaded.info.slices)
    for (const auto& s : per_volume) {
      EXPECT_EQ(s.sop_instance_uid, written.slices.front().sop_instance_uid);
      EXPECT_GE(s.frame, 1);
    }
}

TEST(SyntheticGeometry, MultiVolumeSeriesGivesOneVolumePerTimePoint) {
  SeriesSpec spec = base_spec();
  spec.time_points = 3;
  spec.modality = "MR";
  spec.background = 10;
  // One marker in every time point, one only in each: a garbled mix of time points shows.
  spec.markers = {marker_at(spec, 5, 7, 2, 1000), marker_at(spec, 27, 5, 10, 2000),
                  marker_at(spec, 14, 20, 5, 3000), marker_at(spec, 30, 21, 12, 4000)};
  spec.markers[1].time_point = 0;
  spec.markers[2].time_point = 1;
  spec.markers[3].time_point = 2;
  Expect e;
  e.volumes = 3;
  sd::LoadedSeries loaded;
  run_round_trip(spec, e, {}, &loaded);
  EXPECT_EQ(loaded.info.slices.size(), 3u);
}

// ---------------------------------------------------------------------------------------------
// Bad input

// After damaging `damaged`, either scan skipped it with a decision naming it, or loading the
// stack that holds it throws DicomError.
void expect_skipped_or_refused(const fs::path& dir, const fs::path& damaged) {
  sd::ScanResult scan;
  try {
    scan = sd::scan({dir});
  } catch (const std::exception& e) {
    FAIL() << "scan gave up on the whole folder because of one bad file: " << e.what();
  }
  const std::string name = damaged.filename().string();
  const sd::Stack* holder = nullptr;
  for (const auto& s : scan.stacks)
    for (const auto& f : s.frames)
      if (fs::path(f.path).filename() == damaged.filename()) holder = &s;
  if (!holder) {
    EXPECT_TRUE(any_decision(scan.decisions, {lower(name)}))
        << name << " was skipped without a decision naming it:" << all_decisions(scan.decisions);
    return;
  }
  try {
    sd::load(*holder);
    ADD_FAILURE() << "the stack holding the damaged " << name << " loaded without error";
  } catch (const sd::DicomError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected DicomError, got: " << e.what();
  }
}

TEST(SyntheticGeometry, TruncatedPixelData) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  const auto files = sagitta::testing::write_series(spec, dir);
  const fs::path victim = files.at(6);
  fs::resize_file(victim, fs::file_size(victim) / 2);
  expect_skipped_or_refused(dir, victim);
}

TEST(SyntheticGeometry, TruncatedHeader) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  const auto files = sagitta::testing::write_series(spec, dir);
  const fs::path victim = files.at(3);
  fs::resize_file(victim, 300);  // preamble, meta header and a little of the data set
  expect_skipped_or_refused(dir, victim);
}

TEST(SyntheticGeometry, FolderWithoutDicomIsAnError) {
  const fs::path dir = sagitta::testing::scratch_dir();
  fs::create_directories(dir / "empty_subfolder");
  std::ofstream(dir / "readme.txt") << "not a DICOM file\n";
  {
    std::ofstream bin(dir / "random.bin", std::ios::binary);
    std::mt19937 rng(42);
    for (int n = 0; n < 4096; ++n) bin.put(static_cast<char>(rng() & 0xFF));
  }
  {
    std::ofstream fake(dir / "fake.dcm", std::ios::binary);  // a preamble and magic, then junk
    fake << std::string(128, '\0') << "DICM" << std::string(64, '\x7f');
  }
  EXPECT_THROW(sd::scan({dir}), sd::DicomError);
  EXPECT_THROW(sd::scan({dir / "empty_subfolder"}), sd::DicomError);
  EXPECT_THROW(sd::scan({dir / "does_not_exist"}), sd::DicomError);
}

// Every file of a series damaged the same way: scan finds nothing usable, or load refuses.
void expect_series_refused(const fs::path& dir) {
  sd::ScanResult scan;
  try {
    scan = sd::scan({dir});
  } catch (const sd::DicomError&) {
    return;  // nothing usable: refused at scan time
  } catch (const std::exception& e) {
    FAIL() << "scan: expected DicomError, got: " << e.what();
  }
  ASSERT_FALSE(scan.stacks.empty());
  for (const auto& stack : scan.stacks) {
    try {
      sd::load(stack);
      ADD_FAILURE() << "stack " << stack.id << " loaded without error";
    } catch (const sd::DicomError&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "stack " << stack.id << ": expected DicomError, got: " << e.what();
    }
  }
}

TEST(SyntheticGeometry, ZeroRowsIsRefused) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  for (const auto& f : sagitta::testing::write_series(spec, dir))
    sagitta::testing::set_attribute(f, "0028,0010", "0");
  expect_series_refused(dir);
}

TEST(SyntheticGeometry, HugeRowsAndColumnsWithShortPixelDataAreRefused) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  for (const auto& f : sagitta::testing::write_series(spec, dir)) {
    sagitta::testing::set_attribute(f, "0028,0010", "65535");
    sagitta::testing::set_attribute(f, "0028,0011", "65535");
  }
  expect_series_refused(dir);
}

TEST(SyntheticGeometry, PlausibleSizeWithShortPixelDataIsRefused) {
  // 512 x 512 is an ordinary CT size, but the files hold only 36 x 28 pixels.
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  for (const auto& f : sagitta::testing::write_series(spec, dir)) {
    sagitta::testing::set_attribute(f, "0028,0010", "512");
    sagitta::testing::set_attribute(f, "0028,0011", "512");
  }
  expect_series_refused(dir);
}

TEST(SyntheticGeometry, MissingPixelDataIsRefused) {
  const fs::path dir = sagitta::testing::scratch_dir();
  SeriesSpec spec = base_spec();
  add_default_markers(spec);
  for (const auto& f : sagitta::testing::write_series(spec, dir))
    sagitta::testing::remove_attribute(f, "7fe0,0010");
  expect_series_refused(dir);
}

}  // namespace

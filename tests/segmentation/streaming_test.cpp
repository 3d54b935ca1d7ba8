// The streaming window engine against the whole-volume computation it replaced: the tiled
// accumulation against a dense one written here (bit for bit, on volumes of one, two and many
// slabs, padded or not), segment()'s streamed labels against softmax -> argmax -> ITK's nearest
// neighbour resampling of the whole volume's logits, the fast way back to the source grid against
// ITK's, and the accumulator's memory against the volume's length.
#include <gtest/gtest.h>
#include <itkNearestNeighborInterpolateImageFunction.h>
#include <itkResampleImageFilter.h>

#include <cmath>
#include <random>
#include <set>

#include "phantoms.h"
#include "sagitta/core/image.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/segmentation/postprocess.h"
#include "sagitta/segmentation/preprocess.h"
#include "sagitta/segmentation/review.h"
#include "sagitta/segmentation/segment.h"
#include "sagitta/segmentation/sliding_window.h"
#include "script_models.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;
using sagitta::testing::load_model;
using sagitta::testing::make_volume;
using sagitta::testing::test_card;
using sagitta::testing::write_script_model;

namespace {


seg::Image::Pointer noise(std::array<unsigned, 3> size, std::array<double, 3> spacing, unsigned seed,
                          double oblique_degrees = 0) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  return make_volume(size, spacing, [&](double, double, double) { return n(rng); }, {3.5, -7.25, 11}, oblique_degrees);
}

// The whole-volume computation, written plainly: windows of `patch` over the volume padded
// (centred) with its minimum to at least a patch, each window's logits (batch of one) times the
// Gaussian added to volume-sized sums in window order (z slowest), divided by the summed weights.
std::vector<std::vector<float>> dense_logits(const seg::Model& model, const seg::Image& image, int patch,
                                             double overlap) {
  const auto s = image.GetLargestPossibleRegion().GetSize();
  const int64_t v[3] = {int64_t(s[2]), int64_t(s[1]), int64_t(s[0])};  // z y x
  int64_t p[3], before[3];
  for (int a = 0; a < 3; ++a) p[a] = std::max<int64_t>(v[a], patch), before[a] = (p[a] - v[a]) / 2;
  const float* in = image.GetBufferPointer();
  const float lowest = *std::min_element(in, in + s[0] * s[1] * s[2]);
  std::vector<float> padded(std::size_t(p[0] * p[1] * p[2]), lowest);
  for (int64_t z = 0; z < v[0]; ++z)
    for (int64_t y = 0; y < v[1]; ++y)
      for (int64_t x = 0; x < v[2]; ++x)
        padded[std::size_t(((z + before[0]) * p[1] + y + before[1]) * p[2] + x + before[2])] =
            in[std::size_t((z * v[1] + y) * v[2] + x)];
  const std::vector<float> gauss = seg::importance_weights({patch, patch, patch}, 1.0 / 8);
  const int classes = model.num_classes();
  const std::size_t n = padded.size(), w3 = std::size_t(patch) * std::size_t(patch) * std::size_t(patch);
  std::vector<std::vector<float>> sums(std::size_t(classes), std::vector<float>(n, 0.0f));
  std::vector<float> weights(n, 0.0f);
  for (int z0 : seg::window_starts(int(p[0]), patch, overlap))
    for (int y0 : seg::window_starts(int(p[1]), patch, overlap))
      for (int x0 : seg::window_starts(int(p[2]), patch, overlap)) {
        std::vector<float> window(w3);
        std::size_t i = 0;
        for (int z = 0; z < patch; ++z)
          for (int y = 0; y < patch; ++y)
            for (int x = 0; x < patch; ++x) window[i++] = padded[std::size_t(((z0 + z) * p[1] + y0 + y) * p[2] + x0 + x)];
        std::vector<int64_t> shape;
        const std::vector<float> out = model.forward(window, {1, 1, patch, patch, patch}, &shape);
        i = 0;
        for (int z = 0; z < patch; ++z)
          for (int y = 0; y < patch; ++y)
            for (int x = 0; x < patch; ++x, ++i) {
              const std::size_t at = std::size_t(((z0 + z) * p[1] + y0 + y) * p[2] + x0 + x);
              for (int k = 0; k < classes; ++k) sums[std::size_t(k)][at] += out[std::size_t(k) * w3 + i] * gauss[i];
              weights[at] += gauss[i];
            }
      }
  std::vector<std::vector<float>> out(static_cast<std::size_t>(classes));
  for (int k = 0; k < classes; ++k)
    for (int64_t z = 0; z < v[0]; ++z)
      for (int64_t y = 0; y < v[1]; ++y)
        for (int64_t x = 0; x < v[2]; ++x) {
          const std::size_t at = std::size_t(((z + before[0]) * p[1] + y + before[1]) * p[2] + x + before[2]);
          out[std::size_t(k)].push_back(sums[std::size_t(k)][at] / weights[at]);
        }
  return out;
}

// ITK's nearest-neighbour resampling of `labels` onto `grid` (outside: 0).
seg::LabelImage::Pointer itk_nearest(const seg::LabelImage& labels, const itk::ImageBase<3>& grid) {
  using Filter = itk::ResampleImageFilter<seg::LabelImage, seg::LabelImage>;
  auto f = Filter::New();
  f->SetInput(&labels);
  f->SetInterpolator(itk::NearestNeighborInterpolateImageFunction<seg::LabelImage>::New());
  f->SetOutputOrigin(grid.GetOrigin());
  f->SetOutputSpacing(grid.GetSpacing());
  f->SetOutputDirection(grid.GetDirection());
  f->SetSize(grid.GetLargestPossibleRegion().GetSize());
  f->SetDefaultPixelValue(0);
  f->Update();
  return f->GetOutput();
}

// Voxels where the label maps a and b (on one grid) differ, leaving out exact ties of nearest-
// neighbour resampling from `from`: voxels whose continuous index there is half-way between two
// voxels (an oblique grid rotated about the model grid's centre puts a whole column there), where
// either neighbour is right and ITK's choice depends on its rounding.
std::size_t differences(const seg::LabelImage& a, const seg::LabelImage& b, const seg::LabelImage& from) {
  const std::size_t n = a.GetBufferedRegion().GetNumberOfPixels();
  EXPECT_EQ(n, b.GetBufferedRegion().GetNumberOfPixels());
  const auto size = a.GetLargestPossibleRegion().GetSize();
  std::size_t d = 0, ties = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (a.GetBufferPointer()[i] == b.GetBufferPointer()[i]) continue;
    const seg::LabelImage::IndexType index = {{long(i % size[0]), long(i / size[0] % size[1]), long(i / size[0] / size[1])}};
    itk::Point<double, 3> point;
    a.TransformIndexToPhysicalPoint(index, point);
    itk::ContinuousIndex<double, 3> c;
    from.TransformPhysicalPointToContinuousIndex(point, c);
    bool tie = false;
    for (unsigned k = 0; k < 3; ++k) tie |= std::abs(c[k] - std::floor(c[k]) - 0.5) < 1e-9;
    (tie ? ties : d) += 1;
  }
  ::testing::Test::RecordProperty("ties", std::to_string(ties));
  return d;
}

}  // namespace

TEST(Streaming, TiledLogitsEqualADenseAccumulationBitForBit) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto model = load_model(write_script_model(dir, "conv3", test_card(3, 5, 8, 1.0)));
  // One slab (z smaller than the patch: padded), two slabs, many slabs with a padded y axis.
  for (const std::array<unsigned, 3> size : {std::array<unsigned, 3>{20, 18, 6}, {20, 18, 12}, {13, 7, 45}}) {
    SCOPED_TRACE(::testing::Message() << size[0] << "x" << size[1] << "x" << size[2]);
    const auto image = noise(size, {1, 1, 1}, 5);
    for (const double overlap : {0.5, 0.3}) {
      seg::SlidingWindowOptions o;
      o.overlap = overlap;
      const seg::SlidingWindowResult r = seg::sliding_window(model, {image}, o);
      const auto dense = dense_logits(model, *image, 8, overlap);
      ASSERT_EQ(r.logits.size(), dense.size());
      std::size_t unequal = 0;
      for (std::size_t k = 0; k < dense.size(); ++k)
        for (std::size_t i = 0; i < dense[k].size(); ++i) unequal += r.logits[k]->GetBufferPointer()[i] != dense[k][i];
      EXPECT_EQ(unequal, 0u) << "overlap " << overlap;
      EXPECT_GT(r.accumulator_peak_bytes, 0u);
    }
  }
}

TEST(Streaming, SegmentLabelsEqualTheWholeVolumePath) {
  // Streamed blocks -> labels -> the fast way back, against the whole volume's logits -> softmax
  // -> argmax -> ITK's resampling, on an axis-aligned and an oblique source that both need
  // resampling to the model's 1.3 mm.
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto model = load_model(write_script_model(dir, "conv3", test_card(3, 4, 8, 1.3)));
  for (const double degrees : {0.0, 17.0}) {
    SCOPED_TRACE(::testing::Message() << "oblique " << degrees);
    const auto image = noise({23, 19, 30}, {0.9, 1.1, 1.7}, 11, degrees);
    seg::SegmentOptions o;
    const seg::Segmentation streamed = seg::segment(model, {image}, o);

    const seg::Preprocessed pre = seg::preprocess({image}, model.card(), o.preprocess);
    seg::SlidingWindowResult whole = seg::sliding_window(model, pre.channels, o.window);
    seg::softmax(whole.logits);
    const auto model_labels = seg::argmax(whole.logits);
    const auto reference = itk_nearest(*model_labels, *image);
    EXPECT_EQ(differences(*streamed.labels, *reference, *model_labels), 0u);
    std::set<std::uint16_t> present(streamed.labels->GetBufferPointer(),
                                    streamed.labels->GetBufferPointer() + streamed.labels->GetBufferedRegion().GetNumberOfPixels());
    EXPECT_GE(present.size(), 3u) << "the comparison needs several classes present";
  }
}

TEST(Streaming, MirroredPassesThatDisagreeAreMeasuredAndFlagged) {
  // A step from 0 to 1 at x = 8 in a 16^3 volume (one window). The model's class 1 logit is the
  // x-gradient + 0.5: the plain pass says 1 everywhere but at x = 15 (gradient -1), the pass
  // mirrored along x sees the opposite gradient and says 0 at x = 7 and 8 and 1 at x = 15; the
  // averaged logit is 0.5 everywhere (label 1). So half the passes disagree on 3 of 16 columns:
  // 0.5 x 3 / 16 = 0.09375 over the structure.
  const fs::path dir = sagitta::testing::scratch_dir();
  auto card = test_card(3, 2, 16, 1.0);
  card.mirror_axes = "x";
  const auto model = load_model(write_script_model(dir, "x_gradient", card));
  const auto image = make_volume({16, 16, 16}, {1, 1, 1}, [](double x, double, double) { return x >= 7.5 ? 1.0f : 0.0f; });
  seg::SegmentOptions o;
  o.window.mirror = true;
  const seg::Segmentation mirrored = seg::segment(model, {image}, o);
  ASSERT_EQ(mirrored.confidence.size(), 1u);
  ASSERT_TRUE(mirrored.confidence[0].tta_disagreement.has_value());
  EXPECT_NEAR(*mirrored.confidence[0].tta_disagreement, 0.5 * 3 / 16, 1e-7);
  EXPECT_EQ(mirrored.confidence[0].voxels, 16u * 16 * 16) << "every voxel is label 1";

  // Reviewed: under the default 0.1 it passes, under 0.05 it is flagged with what was measured.
  seg::ReviewContext context;
  context.mirrored = true;
  nlohmann::json qa = seg::review(mirrored, {image}, model.card(), context);
  EXPECT_DOUBLE_EQ(qa["structures"][0]["tta_disagreement"].get<double>(), *mirrored.confidence[0].tta_disagreement);
  for (const auto& f : qa["structures"][0]["flags"]) EXPECT_NE(f["check"], "tta_disagreement");
  for (const auto& s : qa["skipped"]) EXPECT_NE(s["check"], "tta_disagreement") << "it was measured";
  context.overrides.max_tta_disagreement = 0.05;
  qa = seg::review(mirrored, {image}, model.card(), context);
  bool flagged = false;
  for (const auto& f : qa["structures"][0]["flags"])
    if (f["check"] == "tta_disagreement") {
      flagged = true;
      EXPECT_NEAR(f["measured"].get<double>(), 0.09375, 1e-7);
      EXPECT_NE(f["what"].get<std::string>().find("mirrored passes disagree"), std::string::npos) << f["what"];
    }
  EXPECT_TRUE(flagged);

  // Without mirroring nothing is measured, and the review says why it skipped the check.
  const seg::Segmentation plain = seg::segment(model, {image}, seg::SegmentOptions{});
  EXPECT_FALSE(plain.confidence[0].tta_disagreement.has_value());
  context.mirrored = false;
  qa = seg::review(plain, {image}, model.card(), context);
  bool skipped = false;
  for (const auto& s : qa["skipped"]) skipped |= s["check"] == "tta_disagreement";
  EXPECT_TRUE(skipped);

  // A pointwise model is mirror-equivariant: its passes never disagree.
  const auto pointwise = load_model(write_script_model(dir / "pointwise", "threshold", test_card(3, 2, 16, 1.0)));
  const auto step = make_volume({16, 16, 16}, {1, 1, 1}, [](double x, double, double) { return x >= 7.5 ? 2.0f : 0.0f; });
  const seg::Segmentation same = seg::segment(pointwise, {step}, o);
  ASSERT_EQ(same.confidence.size(), 1u);
  EXPECT_EQ(same.confidence[0].voxels, 16u * 16 * 8);
  EXPECT_EQ(same.confidence[0].tta_disagreement.value_or(-1), 0.0);
}

TEST(Streaming, TheWayBackToTheSourceGridIsItksNearestNeighbour) {
  // Random labels on an axis-aligned model grid, mapped onto grids that are finer, coarser,
  // shifted by half voxels, flipped, permuted and oblique.
  std::mt19937 rng(3);
  auto labels = sagitta::new_image<seg::LabelImage>(*seg::Image::New(), {{31, 27, 22}}, 0);
  labels->SetSpacing(itk::Vector<double, 3>(1.5));
  labels->SetOrigin(itk::Point<double, 3>(-10.0));
  for (std::size_t i = 0; i < labels->GetBufferedRegion().GetNumberOfPixels(); ++i)
    labels->GetBufferPointer()[i] = std::uint16_t(rng() % 7);
  struct Case {
    const char* what;
    std::array<unsigned, 3> size;
    std::array<double, 3> spacing, origin;
    std::array<double, 9> direction;
  };
  const std::vector<Case> cases = {
      {"finer", {71, 60, 40}, {0.6, 0.7, 1.0}, {-10.3, -9.8, -10}, {1, 0, 0, 0, 1, 0, 0, 0, 1}},
      {"half voxels", {62, 54, 44}, {0.75, 0.75, 0.75}, {-10, -10, -10.375}, {1, 0, 0, 0, 1, 0, 0, 0, 1}},
      {"coarser, larger", {15, 14, 12}, {4.0, 3.5, 3.9}, {-20, -15, -12}, {1, 0, 0, 0, 1, 0, 0, 0, 1}},
      {"flipped x and z", {50, 40, 30}, {0.9, 1.0, 1.1}, {35, -9, 22}, {-1, 0, 0, 0, 1, 0, 0, 0, -1}},
      {"permuted", {40, 30, 50}, {1.0, 1.1, 0.8}, {-9, -9, -9}, {0, 0, 1, 1, 0, 0, 0, 1, 0}},
      {"oblique", {45, 45, 35}, {0.9, 0.9, 1.2}, {-5, -12, -8}, {0.9659258, -0.2588190, 0, 0.2588190, 0.9659258, 0, 0, 0, 1}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto grid = seg::Image::New();
    seg::Image::RegionType region;
    region.SetSize({{c.size[0], c.size[1], c.size[2]}});
    grid->SetRegions(region);
    grid->SetSpacing(c.spacing.data());
    grid->SetOrigin(c.origin.data());
    seg::Image::DirectionType d;
    for (unsigned r = 0; r < 3; ++r)
      for (unsigned k = 0; k < 3; ++k) d[r][k] = c.direction[r * 3 + k];
    grid->SetDirection(d);
    const auto fast = seg::labels_to_source(*labels, *grid);
    EXPECT_EQ(differences(*fast, *itk_nearest(*labels, *grid), *labels), 0u);
  }
}

TEST(Streaming, AccumulatorMemoryIsFlatInVolumeLength) {
  // 200 and 1000 slices of the same cross-section: the open tiles hold the same bytes, never more
  // than one patch depth of the volume's logits.
  const fs::path dir = sagitta::testing::scratch_dir();
  const int classes = 12;
  const auto model = load_model(write_script_model(dir, "pointwise", test_card(3, classes, 16, 1.0)));
  std::size_t peak[2] = {0, 0};
  int i = 0;
  for (const unsigned slices : {200u, 1000u}) {
    const auto image = noise({20, 18, slices}, {1, 1, 1}, 2);
    seg::SegmentOptions o;
    const seg::Segmentation s = seg::segment(model, {image}, o);
    peak[i++] = s.report["memory_bytes"]["logit_tiles_peak"].get<std::size_t>();
    // At most one patch depth (16 slices) of sums and weights.
    EXPECT_LE(peak[i - 1], std::size_t(16 * 20 * 18 * (classes + 1)) * sizeof(float)) << slices << " slices";
  }
  EXPECT_EQ(peak[0], peak[1]);
}

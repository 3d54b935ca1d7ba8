// Preprocessing (grid, normalisation, crop, back to the source) and postprocessing (argmax,
// components, holes, statistics) on synthetic volumes with known answers.
#include <gtest/gtest.h>
#include <itkImageRegionConstIteratorWithIndex.h>

#include <cmath>

#include "phantoms.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/postprocess.h"
#include "sagitta/segmentation/preprocess.h"

namespace seg = sagitta::segmentation;
using sagitta::testing::make_volume;

namespace {

sagitta::ModelCard card(double spacing, sagitta::Normalization::Scheme scheme = sagitta::Normalization::Scheme::None) {
  sagitta::ModelCard c;
  c.name = "t";
  c.dimensions = 3;
  sagitta::InputChannel ch;
  ch.name = "CT";
  ch.normalization.scheme = scheme;
  c.channels = {ch};
  c.spacing = {spacing, spacing, spacing};
  c.patch_size = {16, 16, 16};
  c.labels = {{0, "background", {0, 0, 0}, {}, {}}, {1, "ball", {255, 0, 0}, {}, {}}, {2, "box", {0, 255, 0}, {}, {}}};
  return c;
}

seg::LabelImage::Pointer labels_from(const seg::Image& image) {
  auto l = seg::LabelImage::New();
  l->SetRegions(image.GetLargestPossibleRegion());
  l->CopyInformation(&image);
  l->Allocate();
  const auto n = image.GetBufferedRegion().GetNumberOfPixels();
  for (std::size_t i = 0; i < n; ++i) l->GetBufferPointer()[i] = std::uint16_t(image.GetBufferPointer()[i]);
  return l;
}

void expect_same_geometry(const itk::ImageBase<3>& a, const itk::ImageBase<3>& b) {
  EXPECT_EQ(a.GetLargestPossibleRegion(), b.GetLargestPossibleRegion());
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a.GetOrigin()[i], b.GetOrigin()[i]);
    EXPECT_EQ(a.GetSpacing()[i], b.GetSpacing()[i]);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(a.GetDirection()[i][j], b.GetDirection()[i][j]);
  }
}

auto ball(double cx, double cy, double cz, double r, float inside, float outside) {
  return [=](double x, double y, double z) {
    return (x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz) <= r * r ? inside : outside;
  };
}

}  // namespace

// The model grid is axis-aligned in LPS at the card's spacing and covers every source voxel
// centre, whatever the source's direction (oblique here).
TEST(Preprocess, ModelGridIsAxisAlignedAndCoversTheSource) {
  auto image = make_volume({40, 30, 10}, {0.8, 0.8, 5.0}, [](double, double, double) { return 0.f; }, {10, -20, 30}, 20);
  auto grid = seg::model_grid(*image, card(2.0));
  seg::Image::DirectionType identity;
  identity.SetIdentity();
  EXPECT_EQ(grid->GetDirection(), identity);
  for (int a = 0; a < 3; ++a) EXPECT_EQ(grid->GetSpacing()[a], 2.0);
  const auto size = image->GetLargestPossibleRegion().GetSize();
  for (int corner = 0; corner < 8; ++corner) {
    itk::ContinuousIndex<double, 3> index;
    for (int a = 0; a < 3; ++a) index[a] = (corner >> a & 1) ? double(size[a]) - 1 : 0.0;
    itk::Point<double, 3> p;
    image->TransformContinuousIndexToPhysicalPoint(index, p);
    itk::ContinuousIndex<double, 3> in_grid;
    grid->TransformPhysicalPointToContinuousIndex(p, in_grid);
    for (int a = 0; a < 3; ++a) {
      EXPECT_GE(in_grid[a], -0.5 - 1e-9) << "corner " << corner;
      EXPECT_LE(in_grid[a], double(grid->GetLargestPossibleRegion().GetSize()[a]) - 0.5 + 1e-9) << "corner " << corner;
    }
  }
}

// A volume stored mirrored (as many NIfTI files are) reaches the model in LPS order: the same
// physical point has the same value before and after preprocessing.
TEST(Preprocess, MirroredSourceIsReorderedNotMirroredForTheModel) {
  auto image = make_volume({20, 16, 8}, {2.0, 2.0, 2.0}, ball(6, 4, 3, 3, 1, 0), {0, 0, 0}, 0);
  seg::Image::DirectionType mirrored;
  mirrored.SetIdentity();
  mirrored[0][0] = -1;
  image->SetDirection(mirrored);
  const auto pre = seg::preprocess({image}, card(2.0));
  const auto& model = *pre.channels[0];
  seg::Image::DirectionType identity;
  identity.SetIdentity();
  EXPECT_EQ(model.GetDirection(), identity);
  std::size_t compared = 0;
  for (itk::ImageRegionConstIteratorWithIndex<seg::Image> it(image, image->GetLargestPossibleRegion()); !it.IsAtEnd(); ++it) {
    seg::Image::PointType p;
    image->TransformIndexToPhysicalPoint(it.GetIndex(), p);
    seg::Image::IndexType idx;
    ASSERT_TRUE(model.TransformPhysicalPointToIndex(p, idx));
    EXPECT_NEAR(model.GetPixel(idx), it.Get(), 1e-5);
    ++compared;
  }
  EXPECT_EQ(compared, 20u * 16 * 8);
}

TEST(Preprocess, LabelsComeBackOnTheExactSourceGrid) {
  // Oblique, anisotropic source; the model works at 1.7 mm isotropic.
  auto image = make_volume({50, 44, 20}, {0.9, 0.9, 2.5}, ball(20, 18, 25, 12, 1, 0), {3.5, -7.25, 12}, 17);
  const auto c = card(1.7);
  const auto pre = seg::preprocess({image}, c);
  ASSERT_TRUE(pre.resampled);
  auto model_labels = labels_from(*pre.channels[0]);  // normalisation None: values are 0 or 1-ish
  for (std::size_t i = 0; i < model_labels->GetBufferedRegion().GetNumberOfPixels(); ++i)
    model_labels->GetBufferPointer()[i] = pre.channels[0]->GetBufferPointer()[i] > 0.5f;
  auto back = seg::labels_to_source(*model_labels, *image);
  expect_same_geometry(*back, *image);
  // Nearest neighbour at 1.7 mm loses at most a shell of the ball: Dice against the truth.
  std::size_t both = 0, a = 0, b = 0;
  for (std::size_t i = 0; i < image->GetBufferedRegion().GetNumberOfPixels(); ++i) {
    const bool t = image->GetBufferPointer()[i] > 0.5f, p = back->GetBufferPointer()[i] == 1;
    both += t && p, a += t, b += p;
  }
  EXPECT_GT(2.0 * double(both) / double(a + b), 0.9);
  auto prob = seg::probability_to_source(*pre.channels[0], *image, 0.0f);
  expect_same_geometry(*prob, *image);
}

TEST(Preprocess, SameSpacingIsNotResampled) {
  auto image = make_volume({20, 20, 20}, {1, 1, 1}, ball(10, 10, 10, 5, 100, -1000));
  const auto pre = seg::preprocess({image}, card(1.0));
  EXPECT_FALSE(pre.resampled);
  for (std::size_t i = 0; i < 8000; ++i) ASSERT_EQ(pre.channels[0]->GetBufferPointer()[i], image->GetBufferPointer()[i]);
}

TEST(Preprocess, Normalisations) {
  auto image = make_volume({10, 10, 10}, {1, 1, 1}, [](double x, double, double) { return float(x * 500 - 1500); });
  auto c = card(1.0, sagitta::Normalization::Scheme::CT);
  c.channels[0].normalization.clip_low = -1000;
  c.channels[0].normalization.clip_high = 1000;
  c.channels[0].normalization.mean = 100;
  c.channels[0].normalization.std = 50;
  auto pre = seg::preprocess({image}, c);
  const float* p = pre.channels[0]->GetBufferPointer();
  EXPECT_FLOAT_EQ(p[0], (-1000 - 100) / 50.f);  // x = 0: -1500 clipped to -1000
  EXPECT_FLOAT_EQ(p[3], (0 - 100) / 50.f);      // x = 3: 0
  EXPECT_FLOAT_EQ(p[9], (1000 - 100) / 50.f);   // x = 9: 3000 clipped
  c.channels[0].normalization.scheme = sagitta::Normalization::Scheme::ZScore;
  pre = seg::preprocess({image}, c);
  double sum = 0, sum2 = 0;
  for (std::size_t i = 0; i < 1000; ++i) sum += pre.channels[0]->GetBufferPointer()[i], sum2 += std::pow(pre.channels[0]->GetBufferPointer()[i], 2);
  // x = 3 is exactly 0 and excluded from the statistics; the rest has mean 0 and std 1.
  const double n = 900;
  EXPECT_NEAR((sum - 100 * pre.channels[0]->GetBufferPointer()[3]) / n, 0, 1e-4);
  EXPECT_NEAR((sum2 - 100 * std::pow(pre.channels[0]->GetBufferPointer()[3], 2)) / n, 1, 1e-3);
}

TEST(Preprocess, BodyCropKeepsTheBodyAndItsGeometry) {
  auto image = make_volume({60, 60, 30}, {1, 1, 1}, ball(30, 30, 15, 8, 40, -1000));
  auto c = card(1.0, sagitta::Normalization::Scheme::CT);
  seg::PreprocessOptions o;
  o.crop_to_body = true;
  o.crop_margin_mm = 2;
  const auto pre = seg::preprocess({image}, c, o);
  ASSERT_TRUE(pre.cropped);
  const auto s = pre.channels[0]->GetLargestPossibleRegion().GetSize();
  EXPECT_EQ(s[0], 21u);  // 17 voxels of ball + 2 * 2 margin
  EXPECT_EQ(s[2], 21u);
  // The crop is a sub-grid: its voxel 0 is the source voxel (20, 20, 5).
  EXPECT_NEAR(pre.channels[0]->GetOrigin()[0], 20.0, 1e-9);
  EXPECT_NEAR(pre.channels[0]->GetOrigin()[2], 5.0, 1e-9);
  // Labels from the cropped grid come back on the full grid, background outside.
  auto l = labels_from(*pre.channels[0]);
  std::fill_n(l->GetBufferPointer(), l->GetBufferedRegion().GetNumberOfPixels(), std::uint16_t(1));
  auto back = seg::labels_to_source(*l, *image);
  expect_same_geometry(*back, *image);
  std::size_t ones = 0;
  for (std::size_t i = 0; i < 60 * 60 * 30; ++i) ones += back->GetBufferPointer()[i] == 1;
  EXPECT_EQ(ones, 21u * 21 * 21);
}

TEST(Preprocess, BadInputsAreRefused) {
  auto image = make_volume({8, 8, 8}, {1, 1, 1}, [](double, double, double) { return 1.f; });
  auto expect_error = [](auto f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const seg::SegmentationError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error([&] { seg::preprocess({image, image}, card(1)); }, "expects 1 input channel");
  auto nan = make_volume({8, 8, 8}, {1, 1, 1}, [](double x, double, double) { return x == 3 ? NAN : 1.f; });
  expect_error([&] { seg::preprocess({nan}, card(1)); }, "64 NaN");
  auto empty = seg::Image::New();
  expect_error([&] { seg::preprocess({empty}, card(1)); }, "empty");
}

TEST(Postprocess, SoftmaxAndArgmax) {
  auto a = make_volume({4, 1, 1}, {1, 1, 1}, [](double x, double, double) { return float(x); });
  auto b = make_volume({4, 1, 1}, {1, 1, 1}, [](double, double, double) { return 1.5f; });
  std::vector<seg::Image::Pointer> scores = {a, b};
  auto labels = seg::argmax(scores);
  EXPECT_EQ(labels->GetBufferPointer()[0], 1);
  EXPECT_EQ(labels->GetBufferPointer()[1], 1);
  EXPECT_EQ(labels->GetBufferPointer()[2], 0);
  seg::softmax(scores);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(a->GetBufferPointer()[i] + b->GetBufferPointer()[i], 1.0, 1e-6);
  EXPECT_NEAR(b->GetBufferPointer()[0], 1 / (1 + std::exp(-1.5)), 1e-6);
}

TEST(Postprocess, ComponentsHolesAndStatistics) {
  // Label 1: a 10^3 cube with a 2^3 hole plus a 2-voxel speck; label 2: a 3^3 cube.
  auto image = make_volume({30, 20, 20}, {0.5, 1, 2}, [](double x, double y, double z) {
    const int i = int(std::lround(x / 0.5)), j = int(std::lround(y)), k = int(std::lround(z / 2));
    if (i >= 14 && i <= 15 && j >= 4 && j <= 5 && k >= 4 && k <= 5) return 0.f;
    if (i >= 10 && i < 20 && j >= 0 && j < 10 && k >= 0 && k < 10) return 1.f;
    if (i >= 25 && i < 27 && j == 15 && k == 15) return 1.f;
    if (i >= 0 && i < 3 && j >= 15 && j < 18 && k >= 15 && k < 18) return 2.f;
    return 0.f;
  });
  auto labels = labels_from(*image);
  seg::PostprocessOptions o;
  o.largest_component = true;
  o.fill_holes = true;
  const auto decisions = seg::postprocess(*labels, o);
  EXPECT_EQ(decisions.size(), 2u);
  const auto stats = seg::label_statistics(*labels, image.GetPointer(), card(1));
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_EQ(stats[1].voxels, 1000u);  // speck removed, hole filled
  EXPECT_NEAR(stats[1].volume_ml, 1000 * 0.5 * 1 * 2 / 1000.0, 1e-12);
  EXPECT_EQ(stats[1].bbox_min, (std::array<long, 3>{10, 0, 0}));
  EXPECT_EQ(stats[1].bbox_max, (std::array<long, 3>{19, 9, 9}));
  EXPECT_NEAR(stats[1].mean_intensity, 992.0 / 1000, 1e-9);  // the 8 filled voxels had intensity 0
  EXPECT_EQ(stats[2].voxels, 27u);
  EXPECT_EQ(stats[0].voxels, 30u * 20 * 20 - 1027);

  auto again = labels_from(*image);
  seg::PostprocessOptions m;
  m.min_component_voxels = 5;
  m.labels = {1};
  seg::postprocess(*again, m);
  const auto s2 = seg::label_statistics(*again, nullptr, card(1));
  EXPECT_EQ(s2[1].voxels, 992u);  // speck gone, hole kept
  EXPECT_EQ(s2[2].voxels, 27u);   // rule not applied to label 2
}

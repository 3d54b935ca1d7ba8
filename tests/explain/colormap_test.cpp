// Colour maps, overlays, salient slices, montages and PNG files, without a model.
#include <gtest/gtest.h>
#include <itkImageFileReader.h>
#include <itkPNGImageIO.h>

#include "sagitta/explain/colormap.h"
#include "sagitta/explain/explain.h"
#include "segmentation/phantoms.h"
#include "support/test_paths.h"

namespace xp = sagitta::explain;
using Colour = std::array<unsigned char, 3>;

TEST(ColorMap, EndpointsAndMidpoints) {
  EXPECT_EQ(xp::colour(xp::ColorMap::Jet, 0), (Colour{0, 0, 128}));   // dark blue
  EXPECT_EQ(xp::colour(xp::ColorMap::Jet, 0.5), (Colour{128, 255, 128}));
  EXPECT_EQ(xp::colour(xp::ColorMap::Jet, 1), (Colour{128, 0, 0}));   // dark red
  EXPECT_EQ(xp::colour(xp::ColorMap::Inferno, 0), (Colour{0, 0, 4}));
  EXPECT_EQ(xp::colour(xp::ColorMap::Inferno, 1), (Colour{252, 255, 164}));
  EXPECT_EQ(xp::colour(xp::ColorMap::Viridis, 0), (Colour{68, 1, 84}));
  EXPECT_EQ(xp::colour(xp::ColorMap::Viridis, 0.5), (Colour{33, 145, 140}));
  EXPECT_EQ(xp::colour(xp::ColorMap::Viridis, 1), (Colour{253, 231, 37}));
  EXPECT_EQ(xp::colour(xp::ColorMap::Viridis, 7.0), xp::colour(xp::ColorMap::Viridis, 1));  // clamped
  // Perceptual maps get brighter monotonically (sum of channels as a proxy for lightness).
  for (auto m : {xp::ColorMap::Inferno, xp::ColorMap::Viridis}) {
    int last = -1;
    for (int i = 0; i <= 64; ++i) {
      const auto c = xp::colour(m, i / 64.0);
      const int sum = c[0] + c[1] + c[2];
      EXPECT_GE(sum, last - 3) << xp::colormap_name(m) << " at " << i;
      last = sum;
    }
  }
  EXPECT_EQ(xp::parse_colormap("inferno"), xp::ColorMap::Inferno);
  EXPECT_FALSE(xp::parse_colormap("rainbow"));
}

TEST(Overlay, BlendsAboveThresholdOutlinesTargetAndWritesPng) {
  auto volume = sagitta::testing::make_volume({20, 10, 5}, {1, 1, 1}, [](double x, double, double) { return x < 10 ? -1000.f : 40.f; });
  auto heat = sagitta::testing::make_volume({20, 10, 5}, {1, 1, 1}, [](double x, double y, double z) {
    return z == 3 && x >= 12 && x < 16 && y >= 2 && y < 8 ? 1.0f : z == 1 ? 0.1f : 0.0f;
  });
  auto target = sagitta::segmentation::LabelImage::New();
  target->SetRegions(volume->GetLargestPossibleRegion());
  target->CopyInformation(volume);
  target->Allocate();
  target->FillBuffer(0);
  for (long y = 3; y < 7; ++y)
    for (long x = 2; x < 6; ++x) target->SetPixel({{x, y, 3}}, 1);

  EXPECT_EQ(xp::salient_slices(*heat, 1), (std::vector<int>{3}));
  EXPECT_EQ(xp::salient_slices(*heat, 5), (std::vector<int>{1, 3}));  // only slices with mass

  xp::OverlayOptions o;
  o.map = xp::ColorMap::Jet;
  o.opacity = 0.5;
  o.threshold = 0.2;
  o.window = 400, o.level = 40;
  const auto rgb = xp::overlay_slice(*volume, *heat, target.GetPointer(), 3, o);
  auto px = [&](long x, long y) { return rgb->GetPixel({{x, y}}); };
  // Air is black, soft tissue at the level mid-grey; heat 1 blends dark red at half opacity.
  EXPECT_EQ(px(8, 0)[0], 0);
  EXPECT_EQ(px(18, 0)[0], 128);
  EXPECT_EQ(px(13, 4)[0], 128);  // 0.5 * 128 (grey) + 0.5 * 128 (jet red)
  EXPECT_EQ(px(13, 4)[1], 64);
  EXPECT_EQ(px(2, 3)[0], 255);   // outline
  EXPECT_EQ(px(3, 4)[0], 0);     // inside the target, air, no heat
  // Below threshold: no colour on slice 1.
  const auto low = xp::overlay_slice(*volume, *heat, nullptr, 1, o);
  EXPECT_EQ(low->GetPixel({{13, 4}})[1], 128);

  const auto m = xp::montage({rgb, low, rgb}, 2, 3);
  EXPECT_EQ(m->GetLargestPossibleRegion().GetSize(0), 2u * 20 + 3);
  EXPECT_EQ(m->GetLargestPossibleRegion().GetSize(1), 2u * 10 + 3);
  EXPECT_EQ(m->GetPixel({{23 + 13, 4}})[1], 128);

  const auto dir = sagitta::testing::scratch_dir();
  xp::write_png(*m, dir / "montage.png");
  auto reader = itk::ImageFileReader<xp::RgbImage>::New();
  reader->SetImageIO(itk::PNGImageIO::New());
  reader->SetFileName((dir / "montage.png").string());
  reader->Update();
  EXPECT_EQ(reader->GetOutput()->GetPixel({{13, 4}}), px(13, 4));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
}

TEST(Correlation, PearsonOfMaps) {
  auto a = sagitta::testing::make_volume({8, 8, 2}, {1, 1, 1}, [](double x, double y, double) { return float(x + y); });
  auto b = sagitta::testing::make_volume({8, 8, 2}, {1, 1, 1}, [](double x, double y, double) { return float(3 * (x + y) + 1); });
  auto c = sagitta::testing::make_volume({8, 8, 2}, {1, 1, 1}, [](double x, double y, double) { return float(-(x + y)); });
  auto flat = sagitta::testing::make_volume({8, 8, 2}, {1, 1, 1}, [](double, double, double) { return 1.f; });
  EXPECT_NEAR(xp::correlation(*a, *b), 1.0, 1e-9);
  EXPECT_NEAR(xp::correlation(*a, *c), -1.0, 1e-9);
  EXPECT_EQ(xp::correlation(*a, *flat), 0.0);
}

// Sliding-window inference against one full-volume forward pass, model loading errors, and the
// whole pipeline's geometry, with tiny TorchScript models written by the test.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "phantoms.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model.h"
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


seg::Image::Pointer noise_volume(std::array<unsigned, 3> size, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0, 1);
  return make_volume(size, {1, 1, 1}, [&](double, double, double) { return n(rng); });
}

// One forward pass over the whole volume: class k as a volume (x fastest).
std::vector<std::vector<float>> full_forward(const seg::Model& model, const seg::Image& image) {
  const auto s = image.GetLargestPossibleRegion().GetSize();
  const std::vector<float> in(image.GetBufferPointer(), image.GetBufferPointer() + s[0] * s[1] * s[2]);
  std::vector<int64_t> out_shape;
  const auto out = model.forward(in, {1, 1, int64_t(s[2]), int64_t(s[1]), int64_t(s[0])}, &out_shape);
  const std::size_t n = s[0] * s[1] * s[2];
  std::vector<std::vector<float>> classes;
  for (int64_t k = 0; k < out_shape[1]; ++k) classes.emplace_back(out.begin() + long(k * n), out.begin() + long((k + 1) * n));
  return classes;
}

// Largest |a - b| over voxels at least `margin` voxels inside the volume and, when `seams` is
// given (per axis x y z: window starts and the patch), not on the outermost layer of any window.
double max_interior_difference(const seg::SlidingWindowResult& r, const std::vector<std::vector<float>>& full,
                               const seg::Image& image, int margin,
                               const std::array<std::vector<int>, 3>& starts = {}, int patch = 0) {
  const auto s = image.GetLargestPossibleRegion().GetSize();
  std::array<std::vector<bool>, 3> seam;
  for (int a = 0; a < 3; ++a) {
    seam[std::size_t(a)].assign(s[a], false);
    for (int st : starts[std::size_t(a)]) {
      seam[std::size_t(a)][std::size_t(st)] = true;
      seam[std::size_t(a)][std::size_t(std::min<int>(int(s[a]) - 1, st + patch - 1))] = true;
    }
  }
  double worst = 0;
  for (std::size_t k = 0; k < full.size(); ++k) {
    std::size_t i = 0;
    for (int z = 0; z < int(s[2]); ++z)
      for (int y = 0; y < int(s[1]); ++y)
        for (int x = 0; x < int(s[0]); ++x, ++i) {
          if (x < margin || y < margin || z < margin || x >= int(s[0]) - margin || y >= int(s[1]) - margin ||
              z >= int(s[2]) - margin)
            continue;
          if (seam[0][std::size_t(x)] || seam[1][std::size_t(y)] || seam[2][std::size_t(z)]) continue;
          worst = std::max(worst, double(std::abs(r.logits[k]->GetBufferPointer()[i] - full[k][i])));
        }
  }
  return worst;
}

}  // namespace

TEST(SlidingWindow, WindowStartsCoverTheAxisEvenly) {
  EXPECT_EQ(seg::window_starts(10, 16, 0.5), (std::vector<int>{0}));
  EXPECT_EQ(seg::window_starts(16, 16, 0.5), (std::vector<int>{0}));
  EXPECT_EQ(seg::window_starts(32, 16, 0.5), (std::vector<int>{0, 8, 16}));
  EXPECT_EQ(seg::window_starts(33, 16, 0.5), (std::vector<int>{0, 6, 11, 17}));
  EXPECT_EQ(seg::window_starts(40, 16, 0.0), (std::vector<int>{0, 12, 24}));
}

TEST(SlidingWindow, PointwiseModelEqualsFullForwardEverywhere) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto model = load_model(write_script_model(dir, "pointwise", test_card(3, 3, 16)));
  auto image = noise_volume({37, 29, 23}, 1);
  const auto full = full_forward(model, *image);
  for (int batch : {1, 3})
    for (bool mirror : {false, true}) {
      seg::SlidingWindowOptions o;
      o.batch_size = batch;
      o.mirror = mirror;
      const auto r = seg::sliding_window(model, {image}, o);
      EXPECT_EQ(r.windows, 4 * 3 * 2);
      EXPECT_EQ(r.forward_passes, (24 + batch - 1) / batch * (mirror ? 8 : 1));
      EXPECT_LT(max_interior_difference(r, full, *image, 0), 1e-5) << "batch " << batch << " mirror " << mirror;
    }
}

TEST(SlidingWindow, NnUNetRulesLayTheirOwnWindowsAndPadWithZero) {
  // nnU-Net's steps (unrounded step 7.5 for a patch of 15), its float16 Gaussian and zero padding:
  // a pointwise model still equals the full forward, with nnU-Net's window count.
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto model = load_model(write_script_model(dir, "pointwise", test_card(3, 3, 15)));
  seg::SlidingWindowOptions o;
  o.step_rule = seg::StepRule::NnUNet;
  o.importance = seg::ImportanceMap::NnUNet;
  o.pad = seg::PadRule::Zero;
  auto image = noise_volume({37, 29, 23}, 1);
  const auto r = seg::sliding_window(model, {image}, o);
  EXPECT_EQ(r.windows, 4 * 3 * 3);  // Sagitta's even rule: 5 x 3 x 3
  EXPECT_EQ(seg::sliding_window(model, {image}, {}).windows, 5 * 3 * 3);
  EXPECT_LT(max_interior_difference(r, full_forward(model, *image), *image, 0), 1e-5);
  auto small = noise_volume({9, 20, 5}, 3);
  const auto rs = seg::sliding_window(model, {small}, o);
  EXPECT_LT(max_interior_difference(rs, full_forward(model, *small), *small, 0), 1e-5);
  bool said = false;
  for (const auto& d : rs.decisions) said |= d.find("with 0") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(SlidingWindow, ConvolutionModelEqualsFullForwardInTheInterior) {
  // A 3x3x3 convolution with zero padding is translation-equivariant except on a window's
  // outermost layer, where it sees the padding instead of the neighbouring voxels. Everywhere
  // else in the volume each window computes exactly what the full forward does, so the weighted
  // average must equal it. (On the seams the Gaussian only damps the error: a separable weight
  // can still favour the window that is wrong on one axis but centred on the two others.)
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto model = load_model(write_script_model(dir, "conv3", test_card(3, 2, 24)));
  auto image = noise_volume({50, 41, 30}, 2);
  const auto full = full_forward(model, *image);
  const auto r = seg::sliding_window(model, {image}, {});
  const std::array<std::vector<int>, 3> starts = {seg::window_starts(50, 24, 0.5), seg::window_starts(41, 24, 0.5),
                                                  seg::window_starts(30, 24, 0.5)};
  const double interior = max_interior_difference(r, full, *image, 1, starts, 24);
  EXPECT_LT(interior, 1e-4);
  ::testing::Test::RecordProperty("max_interior_difference", std::to_string(interior));
  // A model that is wrong on the seams must not be mistaken for one that is right: the seams differ.
  EXPECT_GT(max_interior_difference(r, full, *image, 1), 1e-3);
}

TEST(SlidingWindow, VolumesSmallerThanAPatchArePadded) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto model = load_model(write_script_model(dir, "pointwise", test_card(3, 2, 16)));
  auto image = noise_volume({9, 20, 5}, 3);
  const auto r = seg::sliding_window(model, {image}, {});
  ASSERT_EQ(r.logits.size(), 2u);
  EXPECT_EQ(r.logits[0]->GetLargestPossibleRegion(), image->GetLargestPossibleRegion());
  EXPECT_LT(max_interior_difference(r, full_forward(model, *image), *image, 0), 1e-5);
}

TEST(SlidingWindow, TwoDimensionalModelRunsSliceBySlice) {
  const fs::path dir = sagitta::testing::scratch_dir();
  auto card = test_card(2, 2, 40);
  card.patch_size = {40, 30};
  const auto model = load_model(write_script_model(dir, "conv3", card));
  auto image = noise_volume({40, 30, 6}, 4);  // every slice is one window: exact per-slice forward
  seg::SlidingWindowOptions o;
  o.batch_size = 4;
  const auto r = seg::sliding_window(model, {image}, o);
  EXPECT_EQ(r.windows, 6);
  const std::size_t plane = 40 * 30;
  for (int z = 0; z < 6; ++z) {
    std::vector<float> slice(image->GetBufferPointer() + z * plane, image->GetBufferPointer() + (z + 1) * plane);
    const auto out = model.forward(slice, {1, 1, 30, 40});
    for (int k = 0; k < 2; ++k)
      for (std::size_t i = 0; i < plane; ++i)
        ASSERT_NEAR(r.logits[std::size_t(k)]->GetBufferPointer()[z * plane + i], out[k * plane + i], 1e-5);
  }
}

TEST(Model, BadModelsAreRefusedWithAClearMessage) {
  const fs::path dir = sagitta::testing::scratch_dir();
  auto expect_error = [](const fs::path& card, const std::string& needle) {
    try {
      load_model(card);
      ADD_FAILURE() << "no error, expected " << needle;
    } catch (const seg::SegmentationError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  // Not TorchScript.
  {
    std::ofstream(dir / "junk.pt") << "this is not a model";
    auto card = test_card(3, 2, 8);
    card.weights = dir / "junk.pt";
    sagitta::save_card(card, dir / "junk.json");
    expect_error(dir / "junk.json", "not a TorchScript model");
  }
  // The model takes one channel, the card says two.
  {
    auto card = test_card(3, 2, 8);
    card.channels.push_back(card.channels[0]);
    expect_error(write_script_model(dir / "channels", "one_channel", card), "does not accept the card's input (2 channel");
  }
  // The card says three classes, the model gives two.
  {
    auto card = write_script_model(dir / "classes", "pointwise", test_card(3, 2, 8));
    auto c = sagitta::load_card(card);
    sagitta::Label extra;
    extra.value = 2;
    extra.name = "extra";
    c.labels.push_back(extra);
    sagitta::save_card(c, card);
    expect_error(card, "expects 3 classes");
  }
  // The card promises (logits, activation), the model gives logits.
  {
    auto card = write_script_model(dir / "tuple", "pointwise", test_card(3, 2, 8));
    auto c = sagitta::load_card(card);
    c.returns_activation = true;
    sagitta::save_card(c, card);
    expect_error(card, "returns (logits, activation)");
  }
  // And a model that does return the activation loads and segments.
  const auto ok = load_model(write_script_model(dir / "ok", "tuple", test_card(3, 2, 8)));
  EXPECT_EQ(ok.num_classes(), 2);
  EXPECT_NO_THROW(seg::sliding_window(ok, {noise_volume({10, 10, 10}, 5)}, {}));
}

TEST(Model, NativeUNetLoadsAndSegments) {
  // The card's other format: a native U-Net checkpoint. Sliding-window logits must match a
  // forward pass on a volume that is exactly one patch.
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto model = load_model(sagitta::testing::write_native_unet(dir, test_card(3, 3, 16)));
  EXPECT_EQ(model.size_divisor(), 2);
  EXPECT_EQ(model.num_classes(), 3);
  auto image = noise_volume({16, 16, 16}, 6);
  const auto r = seg::sliding_window(model, {image}, {});
  EXPECT_EQ(r.windows, 1);
  EXPECT_LT(max_interior_difference(r, full_forward(model, *image), *image, 0), 1e-5);
  // Native checkpoints are checked against their card too.
  auto card = sagitta::load_card(dir / "model.json");
  card.channels.push_back(card.channels[0]);
  try {
    seg::Model::load(card);
    ADD_FAILURE() << "no error";
  } catch (const seg::SegmentationError& e) {
    EXPECT_NE(std::string(e.what()).find("2, 3, 3D"), std::string::npos) << e.what();
  }
}

TEST(Segment, OutputsAreOnTheSourceGridAndFindTheBall) {
  // An oblique, anisotropic CT-like volume with a 300 HU ball in 0 HU; the model (a threshold at
  // 100 HU after CT normalisation) works at 1.6 mm isotropic with a 24^3 patch.
  const fs::path dir = sagitta::testing::scratch_dir();
  auto card = test_card(3, 2, 24, 1.6);
  card.channels[0].normalization.scheme = sagitta::Normalization::Scheme::CT;
  card.channels[0].normalization.std = 100;
  const auto model = load_model(write_script_model(dir, "threshold", card));
  const double cx = 17.3, cy = 11.2, cz = 40, r = 14;  // inside the oblique volume
  auto truth = [&](double x, double y, double z) {
    return (x - cx) * (x - cx) + (y - cy) * (y - cy) + (z - cz) * (z - cz) <= r * r;
  };
  auto image = make_volume({70, 60, 25}, {0.7, 0.8, 3.0},
                           [&](double x, double y, double z) { return truth(x, y, z) ? 300.f : 0.f; }, {5.5, -20.25, 3}, 25);
  seg::SegmentOptions o;
  o.probabilities = true;
  o.postprocess.largest_component = true;
  const auto result = seg::segment(model, {image}, o);
  // Geometry: bit for bit the source's.
  for (const itk::ImageBase<3>* out : {static_cast<const itk::ImageBase<3>*>(result.labels.GetPointer()),
                                       static_cast<const itk::ImageBase<3>*>(result.probabilities[1].GetPointer())}) {
    EXPECT_EQ(out->GetLargestPossibleRegion(), image->GetLargestPossibleRegion());
    EXPECT_EQ(out->GetOrigin(), image->GetOrigin());
    EXPECT_EQ(out->GetSpacing(), image->GetSpacing());
    EXPECT_EQ(out->GetDirection(), image->GetDirection());
  }
  std::size_t both = 0, t = 0, p = 0;
  for (std::size_t i = 0; i < image->GetBufferedRegion().GetNumberOfPixels(); ++i) {
    const bool a = image->GetBufferPointer()[i] > 150, b = result.labels->GetBufferPointer()[i] == 1;
    both += a && b, t += a, p += b;
    ASSERT_NEAR(result.probabilities[0]->GetBufferPointer()[i] + result.probabilities[1]->GetBufferPointer()[i], 1, 1e-5);
  }
  const double dice = 2.0 * double(both) / double(t + p);
  EXPECT_GT(dice, 0.95);
  ::testing::Test::RecordProperty("dice", std::to_string(dice));
  ASSERT_EQ(result.statistics.size(), 2u);
  const double ball_ml = 4.0 / 3 * M_PI * r * r * r / 1000;
  EXPECT_NEAR(result.statistics[1].volume_ml, ball_ml, 0.1 * ball_ml);
  EXPECT_NEAR(result.statistics[1].mean_intensity, 300, 30);
  EXPECT_TRUE(result.report.contains("timings_s"));
}

// MONAI bundles' windows: starts and importance maps against monai_windows_reference.py (MONAI's
// _get_scan_interval, dense_patch_slices and compute_importance_map restated with python3-torch).
TEST(SlidingWindow, MonaiRulesMatchItsInferer) {
  if (sagitta::testing::run_command("/usr/bin/python3 -c 'import torch' 2>/dev/null").exit_code != 0)
    GTEST_SKIP() << "python3-torch is not installed";
  const nlohmann::json starts = {{96, 96, 0.5}, {97, 96, 0.5}, {200, 96, 0.5}, {200, 96, 0.25}, {130, 64, 0.7},
                                 {33, 32, 0.0}, {50, 7, 0.9}, {5, 1, 0.0}, {1000, 128, 0.8}};
  const nlohmann::json maps = {{{5, 8, 7}, 0.125}, {{1, 16, 12}, 0.125}, {{24, 24, 24}, 0.25}};
  const fs::path dir = sagitta::testing::scratch_dir();
  std::ofstream(dir / "cases.json") << nlohmann::json{{"starts", starts}, {"maps", maps}}.dump();
  const auto r = sagitta::testing::run_command(
      "/usr/bin/python3 " +
      sagitta::testing::shell_quote(sagitta::testing::source_dir() / "tests/segmentation/monai_windows_reference.py") +
      " " + sagitta::testing::shell_quote(dir / "cases.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ref = nlohmann::json::parse(r.out);
  for (std::size_t i = 0; i < starts.size(); ++i) {
    const auto& c = starts[i];
    EXPECT_EQ(seg::window_starts(c[0].get<int>(), c[1].get<int>(), c[2].get<double>(), seg::StepRule::Monai),
              ref["starts"][i].get<std::vector<int>>())
        << c.dump();
  }
  for (std::size_t i = 0; i < maps.size(); ++i) {
    const auto zyx = maps[i][0].get<std::vector<int>>();
    const auto w = seg::importance_weights({zyx[2], zyx[1], zyx[0]}, maps[i][1].get<double>(), seg::ImportanceMap::Monai);
    const auto expected = ref["maps"][i].get<std::vector<double>>();
    ASSERT_EQ(w.size(), expected.size());
    double worst = 0;
    for (std::size_t k = 0; k < w.size(); ++k) worst = std::max(worst, std::abs(double(w[k]) - expected[k]));
    EXPECT_LT(worst, 1e-7) << maps[i].dump();
  }
}

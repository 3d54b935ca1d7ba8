// The rest of the model contract: several folds averaged (as probabilities or, like nnU-Net, as
// logits), region-based sigmoid outputs turned into labels in region order, and test-time
// mirroring limited to the axes the card allows, in the tensor's own axis order.
#include <gtest/gtest.h>

#include <cmath>

#include "phantoms.h"
#include "sagitta/core/error.h"
#include "sagitta/segmentation/segment.h"
#include "script_models.h"
#include "support/test_paths.h"
#include "window_engine.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;
using sagitta::testing::make_volume;

namespace {

std::vector<float> forward(const seg::Model& m, const std::vector<float>& x, const std::vector<int64_t>& shape) {
  return m.forward(x, shape);
}

}  // namespace

TEST(ModelContract, FoldsAreAveragedAsTheCardSays) {
  const fs::path dir = sagitta::testing::scratch_dir();
  auto card = sagitta::testing::test_card(3, 3, 8);
  const auto a = sagitta::load_card(sagitta::testing::write_script_model(dir / "a", "pointwise", card));
  // Another set of weights (the writer seeds its generator, so another kind of network).
  const auto b = sagitta::load_card(sagitta::testing::write_script_model(dir / "b", "conv3", card));
  ASSERT_NE(a.sha256, b.sha256);
  seg::ModelOptions o;
  o.threads = 1;
  const auto ma = seg::Model::load(a, o), mb = seg::Model::load(b, o);
  std::vector<float> x(2 * 8 * 8 * 8);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(std::sin(0.37 * double(i)) * 2);
  const std::vector<int64_t> shape = {2, 1, 8, 8, 8};
  const auto la = forward(ma, x, shape), lb = forward(mb, x, shape);
  const std::size_t n = 8 * 8 * 8;
  for (const std::string average : {"probabilities", "logits"}) {
    auto both = a;
    both.folds = {{b.weights, b.sha256}};
    both.fold_average = average;
    const auto m = seg::Model::load(both, o);
    const auto l = forward(m, x, shape);
    ASSERT_EQ(l.size(), la.size());
    double worst = 0;
    for (std::size_t s = 0; s < 2; ++s)
      for (std::size_t v = 0; v < n; ++v) {
        double za = 0, zb = 0, z = 0;
        for (std::size_t k = 0; k < 3; ++k) {
          const std::size_t i = (s * 3 + k) * n + v;
          za += std::exp(la[i]), zb += std::exp(lb[i]), z += std::exp(l[i]);
        }
        for (std::size_t k = 0; k < 3; ++k) {
          const std::size_t i = (s * 3 + k) * n + v;
          const double expected = average == "logits" ? (la[i] + lb[i]) / 2 : (std::exp(la[i]) / za + std::exp(lb[i]) / zb) / 2;
          const double got = average == "logits" ? l[i] : std::exp(l[i]) / z;
          worst = std::max(worst, std::abs(expected - got));
        }
      }
    EXPECT_LT(worst, 1e-5) << average;
  }
  // A fold whose file changed is caught by its hash.
  auto tampered = a;
  tampered.folds = {{b.weights, a.sha256}};
  sagitta::save_card(tampered, dir / "tampered.json");
  EXPECT_THROW(sagitta::load_card(dir / "tampered.json"), sagitta::Error);
}

TEST(ModelContract, SigmoidRegionsBecomeLabelsInRegionOrder) {
  // "threshold": output 0 is 0 everywhere (probability 0.5, not above), output 1 is 10 (x - 1):
  // on inside the ball. Region 0 covers labels 1 and 2, region 1 label 2.
  const fs::path dir = sagitta::testing::scratch_dir();
  auto card = sagitta::testing::test_card(3, 3, 16, 1.5);
  card.channels[0].normalization.scheme = sagitta::Normalization::Scheme::CT;
  card.channels[0].normalization.std = 100;
  card.activation = "sigmoid";
  card.regions = {{{1, 2}, 1}, {{2}, 2}};
  const auto loaded = sagitta::load_card(sagitta::testing::write_script_model(dir, "threshold", card));
  EXPECT_EQ(loaded.output_channels(), 2);
  const auto model = seg::Model::load(loaded, {});
  auto image = make_volume({30, 30, 30}, {1.5, 1.5, 1.5}, [](double x, double y, double z) {
    return (x - 22) * (x - 22) + (y - 22) * (y - 22) + (z - 22) * (z - 22) <= 64 ? 400.f : -50.f;
  });
  seg::SegmentOptions o;
  o.probabilities = true;
  const auto r = seg::segment(model, {image}, o);
  std::size_t twos = 0, ones = 0, ball = 0;
  const auto* l = r.labels->GetBufferPointer();
  const auto* v = image->GetBufferPointer();
  for (std::size_t i = 0; i < 27000; ++i) twos += l[i] == 2, ones += l[i] == 1, ball += v[i] > 0;
  EXPECT_EQ(ones, 0u);
  EXPECT_EQ(twos, ball);
  ASSERT_EQ(r.probabilities.size(), 2u);  // one per region, sigmoid
  EXPECT_NEAR(r.probabilities[0]->GetBufferPointer()[0], 0.5, 1e-6);
}

TEST(ModelContract, MirroringFlipsOnlyTheAllowedAxesInTensorOrder) {
  namespace eng = seg::engine;
  // Tensor N C D H W: with tensor_axes zyx, x is W (dimension 4); with xyz, x is D (dimension 2).
  auto card = sagitta::testing::test_card(3, 2, 8);
  card.mirror_axes = "x";
  EXPECT_EQ(eng::mirror_flips(card, true), (eng::Flips{{}, {4}}));
  card.tensor_axes = "xyz";
  EXPECT_EQ(eng::mirror_flips(card, true), (eng::Flips{{}, {2}}));
  card.mirror_axes = "";
  EXPECT_EQ(eng::mirror_flips(card, true), (eng::Flips{{}}));
  card.tensor_axes = "zyx";
  card.mirror_axes = "xyz";
  EXPECT_EQ(eng::mirror_flips(card, true).size(), 8u);
  EXPECT_EQ(eng::mirror_flips(card, false).size(), 1u);
  card.dimensions = 2;
  card.mirror_axes = "yz";  // a 2D model never flips its slice axis
  EXPECT_EQ(eng::mirror_flips(card, true), (eng::Flips{{}, {2}}));
}

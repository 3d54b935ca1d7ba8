// The card's normalisations against numpy, written the way the pipelines they come from compute
// them (MONAI's NormalizeIntensity, ScaleIntensityRange and ScaleIntensityRangePercentiles;
// nnU-Net's ZScoreNormalization and RescaleTo01Normalization), on a volume with a zero background.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "sagitta/core/error.h"
#include "sagitta/core/model_card.h"
#include "normalise.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;
using sagitta::Normalization;

namespace {

// Each case: the card's normalisation; kReference computes the same thing with numpy, by name.
struct Case {
  const char* name;
  nlohmann::json card;
};

const char* kReference = R"(
import sys, numpy as np
x = np.fromfile(sys.argv[1], "<f4").astype(np.float64)
nz = x != 0
def zscore(v, sel):
    out = v.copy()
    s = v[sel].std()
    out[sel] = (v[sel] - v[sel].mean()) / (s if s > 1e-8 else 1)
    return out
def scale(v, a0, a1, b0, b1, clip):
    v = (v - a0) / (a1 - a0) * (b1 - b0) + b0
    return np.clip(v, b0, b1) if clip else v
lo, hi = np.percentile(x, 5), np.percentile(x, 95)
clipped = np.clip(x, lo, hi)
cases = {
  "zscore all": zscore(x, np.ones_like(nz)),
  "zscore nonzero": zscore(x, nz),
  "range": scale(x, -200, 300, 0, 1, True),
  "range noclip": scale(x, -200, 300, -1, 1, False),
  "percentile scale": scale(x, lo, hi, 0, 1, True),
  "percentile zscore": (clipped - clipped.mean()) / clipped.std(),
  "minmax": (x - x.min()) / (x.max() - x.min()),
}
for name, v in cases.items():
    v.astype("<f4").tofile(sys.argv[2] + "/" + name.replace(" ", "_") + ".f32")
)";

}  // namespace

TEST(Normalisation, SchemesMatchNumpy) {
  if (sagitta::testing::run_command("/usr/bin/python3 -c 'import numpy' 2>/dev/null").exit_code != 0)
    GTEST_SKIP() << "python3-numpy is needed for the reference (apt-get install python3-numpy)";
  std::mt19937 rng(7);
  std::normal_distribution<float> body(80, 120);
  std::vector<float> x(30 * 30 * 20);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = (i % 30 < 6 || i % 30 > 25) ? 0.f : body(rng);
  const fs::path dir = sagitta::testing::scratch_dir();
  {
    std::ofstream f(dir / "x.f32", std::ios::binary);
    f.write(reinterpret_cast<const char*>(x.data()), std::streamsize(x.size() * sizeof(float)));
    std::ofstream(dir / "ref.py") << kReference;
  }
  const auto r = sagitta::testing::run_command("/usr/bin/python3 " + (dir / "ref.py").string() + " " +
                                               (dir / "x.f32").string() + " " + dir.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Case cases[] = {
      {"zscore all", {{"scheme", "zscore"}, {"mask", "all"}}},
      {"zscore nonzero", {{"scheme", "zscore"}, {"mask", "nonzero"}}},
      {"range", {{"scheme", "range"}, {"a", {-200, 300}}, {"b", {0, 1}}}},
      {"range noclip", {{"scheme", "range"}, {"a", {-200, 300}}, {"b", {-1, 1}}, {"clip", false}}},
      {"percentile scale", {{"scheme", "percentile"}, {"percentiles", {5, 95}}, {"b", {0, 1}}}},
      {"percentile zscore", {{"scheme", "percentile"}, {"percentiles", {5, 95}}, {"then", "zscore"}, {"mask", "all"}}},
      {"minmax", {{"scheme", "minmax"}, {"mask", "all"}}},
  };
  for (const auto& c : cases) {
    nlohmann::json card = {{"name", "m"},       {"weights", "m.pt"},  {"dimensions", 3},
                           {"channels", {{{"name", "MR"}, {"normalization", c.card}}}},
                           {"spacing", {1, 1, 1}}, {"patch_size", {8, 8, 8}},
                           {"labels", {{{"value", 0}, {"name", "background"}}, {{"value", 1}, {"name", "a"}}}}};
    const Normalization n = sagitta::card_from_json(card, {}).channels[0].normalization;
    std::vector<float> ours = x;
    const std::string decision = sagitta::segmentation::detail::normalise(x.data(), ours.data(), x.size(), n, "MR");
    std::string file = c.name;
    std::replace(file.begin(), file.end(), ' ', '_');
    const auto expected = sagitta::testing::read_floats(dir / (file + ".f32"));
    ASSERT_EQ(expected.size(), ours.size());
    double worst = 0;
    for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::abs(ours[i] - expected[i])));
    EXPECT_LT(worst, 2e-5) << c.name << " (" << decision << ")";
    // The card writes back what it read.
    EXPECT_EQ(sagitta::card_from_json(sagitta::to_json(sagitta::card_from_json(card, {})), {}).channels[0].normalization.scheme,
              n.scheme);
  }
}

TEST(Normalisation, BadParametersAreRefused) {
  for (const nlohmann::json& bad : std::vector<nlohmann::json>{
           {{"scheme", "percentile"}, {"percentiles", {90, 10}}},
           {{"scheme", "range"}, {"a", {1, 1}}},
           {{"scheme", "zscore"}, {"mask", "brain"}},
           {{"scheme", "range"}, {"a", {0}}},
           {{"scheme", "histogram"}}}) {
    nlohmann::json card = {{"name", "m"},       {"weights", "m.pt"},  {"dimensions", 3},
                           {"channels", {{{"name", "MR"}, {"normalization", bad}}}},
                           {"spacing", {1, 1, 1}}, {"patch_size", {8, 8, 8}},
                           {"labels", {{{"value", 0}, {"name", "background"}}, {{"value", 1}, {"name", "a"}}}}};
    EXPECT_THROW(sagitta::card_from_json(card, {}), sagitta::Error) << bad.dump();
  }
}

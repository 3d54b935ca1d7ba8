// The array convention in the card. A network trained in Python on RAS-ordered arrays with C x i x
// j x k tensors (nibabel/MONAI style; tests/segmentation/train_ras_model.py, shipped in
// testdata/models/ras_phantom) and exported with
// --orientation RAS --tensor-axes xyz must find the patient's left and right spheres on the
// correct side however the input is stored: LPS, RAS (stored mirrored), permuted and oblique.
// The same weights behind a card that says LPS (what every model got before) swap the sides.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "ras_phantom.h"
#include "script_models.h"
#include "sagitta/core/error.h"
#include "sagitta/segmentation/segment.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;

using namespace sagitta::testing::ras;

namespace {

// The shipped model (testdata/models/ras_phantom, made by train_ras_model.py: seeded, ~5 CPU
// minutes, so it is trained once rather than by every test run).
fs::path ras_model() { return sagitta::testing::source_dir() / "testdata/models/ras_phantom/model.json"; }

struct Case {
  const char* name;
  seg::Image::DirectionType d;
  std::array<unsigned, 3> size;
};

std::vector<Case> cases() {
  const double c = std::cos(20 * M_PI / 180), s = std::sin(20 * M_PI / 180);
  return {
      {"LPS", direction({1, 0, 0, 0, 1, 0, 0, 0, 1}), {40, 40, 30}},
      {"RAS (stored mirrored)", direction({-1, 0, 0, 0, -1, 0, 0, 0, 1}), {40, 40, 30}},
      // Axes permuted (the first runs superior, the other two in the axial plane, rotated by 20
      // degrees from left and posterior).
      {"permuted, oblique", direction({0, c, s, 0, s, -c, 1, 0, 0}), {30, 40, 40}},
  };
}

seg::Segmentation run(const sagitta::ModelCard& card, const seg::Image::Pointer& image) {
  const auto model = sagitta::testing::load_model(card);
  return seg::segment(model, {image}, seg::SegmentOptions{});
}

}  // namespace

TEST(Orientation, RasModelFindsEachSideWhateverTheStorage) {
  const auto card = sagitta::load_card(ras_model());
  EXPECT_EQ(card.orientation, "RAS");
  EXPECT_EQ(card.tensor_axes, "xyz");
  const Phantom p{{11, 1, -2}, {-10, -2, 2}};
  for (const auto& c : cases()) {
    const auto image = stored(p, c.d, c.size);
    const auto result = run(card, image);
    const double left = dice(*result.labels, p, 1), right = dice(*result.labels, p, 2);
    std::cout << c.name << ": Dice left " << left << ", right " << right << std::endl;
    EXPECT_GT(left, 0.8) << c.name;
    EXPECT_GT(right, 0.8) << c.name;
    // Outputs come back on the input's own grid.
    EXPECT_TRUE(seg::same_grid(*result.labels, *image)) << c.name;
  }
}

TEST(Orientation, TheSameWeightsWithAWrongOrientationSwapTheSides) {
  auto card = sagitta::load_card(ras_model());
  const Phantom p{{11, 1, -2}, {-10, -2, 2}};
  const auto image = stored(p, direction({1, 0, 0, 0, 1, 0, 0, 0, 1}), {40, 40, 30});
  const auto right_card = run(card, image);
  card.orientation = "LPS";  // what every card meant before the field existed
  const auto wrong = run(card, image);
  const double good = dice(*right_card.labels, p, 1) + dice(*right_card.labels, p, 2);
  const double bad = dice(*wrong.labels, p, 1) + dice(*wrong.labels, p, 2);
  std::cout << "Dice left + right: card RAS " << good << ", card LPS " << bad << std::endl;
  EXPECT_GT(good, 1.6);
  EXPECT_LT(bad, 0.6);
}

TEST(OrientationCard, CodesAndConventionsAreChecked) {
  EXPECT_THROW(sagitta::orientation_vectors("LPR"), sagitta::Error);
  EXPECT_THROW(sagitta::orientation_vectors("XYZ"), sagitta::Error);
  const auto ras = sagitta::orientation_vectors("RAS");
  EXPECT_EQ(ras[0][0], -1);
  EXPECT_EQ(ras[1][1], -1);
  EXPECT_EQ(ras[2][2], 1);
  const auto ail = sagitta::orientation_vectors("AIL");
  EXPECT_EQ(ail[0][1], -1);
  EXPECT_EQ(ail[1][2], -1);
  EXPECT_EQ(ail[2][0], 1);
  nlohmann::json j = {{"name", "m"},       {"weights", "m.pt"},  {"dimensions", 3},
                      {"channels", {{{"name", "CT"}}}},
                      {"spacing", {1, 1, 1}}, {"patch_size", {8, 8, 8}},
                      {"labels", {{{"value", 0}, {"name", "background"}}, {{"value", 1}, {"name", "a"}}}}};
  EXPECT_EQ(sagitta::card_from_json(j, {}).orientation, "LPS");
  EXPECT_EQ(sagitta::card_from_json(j, {}).tensor_order(), (std::array<int, 3>{0, 1, 2}));
  j["orientation"] = "ras";
  j["tensor_axes"] = "xyz";
  const auto card = sagitta::card_from_json(j, {});
  EXPECT_EQ(card.orientation, "RAS");
  EXPECT_EQ(card.tensor_order(), (std::array<int, 3>{2, 1, 0}));
  // The round trip through JSON keeps the convention.
  EXPECT_EQ(sagitta::card_from_json(sagitta::to_json(card), {}).tensor_axes, "xyz");
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"orientation", "LPR"}, {"tensor_axes", "xxy"}, {"mirror_axes", "w"}, {"reorient", "rotate"},
           {"activation", "tanh"}}) {
    auto bad = j;
    bad[key] = value;
    EXPECT_THROW(sagitta::card_from_json(bad, {}), sagitta::Error) << key;
  }
  auto stored = j;
  stored["orientation"] = "stored";
  EXPECT_EQ(sagitta::card_from_json(stored, {}).reorient, "closest");
}

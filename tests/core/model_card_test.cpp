// Model cards: JSON round trip, validation messages, sha256 pinning.
#include <gtest/gtest.h>

#include <fstream>

#include "sagitta/core/error.h"
#include "sagitta/core/model_card.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
}

sagitta::ModelCard sample(const fs::path& weights) {
  sagitta::ModelCard c;
  c.name = "organs";
  c.version = "2";
  c.weights = weights;
  c.dimensions = 3;
  sagitta::InputChannel ch;
  ch.name = "CT";
  ch.normalization.scheme = sagitta::Normalization::Scheme::CT;
  ch.normalization.clip_low = -200;
  ch.normalization.clip_high = 300;
  ch.normalization.mean = 50;
  ch.normalization.std = 120;
  c.channels = {ch};
  c.spacing = {1.5, 1.5, 3};
  c.patch_size = {64, 64, 32};
  c.labels = {{0, "background", {0, 0, 0}, {}, {}},
              {1, "liver", {220, 130, 100}, sagitta::Code{"123037004", "SCT", "Anatomical Structure"},
               sagitta::Code{"10200004", "SCT", "Liver"}},
              {3, "spleen", {157, 108, 162}, {}, {}}};
  c.gradcam_layer = "decoder.0";
  c.returns_activation = true;
  return c;
}

}  // namespace

TEST(Sha256, KnownDigests) {
  const fs::path dir = sagitta::testing::scratch_dir();
  write(dir / "empty", "");
  write(dir / "abc", "abc");
  std::string million(1000000, 'a');
  write(dir / "million", million);
  EXPECT_EQ(sagitta::sha256_file(dir / "empty"), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sagitta::sha256_file(dir / "abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sagitta::sha256_file(dir / "million"), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(ModelCard, SaveLoadRoundTrip) {
  const fs::path dir = sagitta::testing::scratch_dir();
  write(dir / "model.pt", "weights");
  sagitta::save_card(sample(dir / "model.pt"), dir / "model.json");
  std::ifstream f(dir / "model.json");
  const auto j = nlohmann::json::parse(f);
  EXPECT_EQ(j["weights"], "model.pt");  // stored relative to the card
  const sagitta::ModelCard c = sagitta::load_card(dir / "model.json");
  EXPECT_EQ(c.name, "organs");
  EXPECT_EQ(c.weights, fs::absolute(dir / "model.pt"));
  EXPECT_EQ(c.sha256, sagitta::sha256_file(dir / "model.pt"));
  EXPECT_EQ(c.num_classes(), 4);
  ASSERT_NE(c.find_label("liver"), nullptr);
  EXPECT_EQ(c.find_label("liver")->type->meaning, "Liver");
  EXPECT_EQ(c.channels[0].normalization.scheme, sagitta::Normalization::Scheme::CT);
  EXPECT_EQ(c.channels[0].normalization.clip_high, 300);
  EXPECT_EQ(c.spacing, (std::vector<double>{1.5, 1.5, 3}));
  EXPECT_TRUE(c.returns_activation);
  EXPECT_EQ(sagitta::to_json(c)["labels"], sagitta::to_json(sample(c.weights))["labels"]);
}

TEST(ModelCard, HashMismatchIsRefused) {
  const fs::path dir = sagitta::testing::scratch_dir();
  write(dir / "model.pt", "weights");
  sagitta::save_card(sample(dir / "model.pt"), dir / "model.json");
  write(dir / "model.pt", "other weights");
  try {
    sagitta::load_card(dir / "model.json");
    FAIL() << "no error";
  } catch (const sagitta::Error& e) {
    EXPECT_NE(std::string(e.what()).find("sha256 mismatch"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(sagitta::load_card(dir / "model.json", false));
}

TEST(ModelCard, InvalidCardsNameTheProblem) {
  const fs::path dir = sagitta::testing::scratch_dir();
  write(dir / "model.pt", "weights");
  auto base = sagitta::to_json(sample(dir / "model.pt"));
  base["weights"] = "model.pt";
  auto expect_error = [&](nlohmann::json j, const std::string& needle) {
    write(dir / "bad.json", j.dump());
    try {
      sagitta::load_card(dir / "bad.json", false);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const sagitta::Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad.json"), std::string::npos) << e.what();
    }
  };
  auto j = base;
  j["dimensions"] = 4;
  expect_error(j, "dimensions");
  j = base;
  j["spacing"] = {1, 1};
  expect_error(j, "spacing");
  j = base;
  j["labels"].erase(0);
  expect_error(j, "background");
  j = base;
  j["labels"][2]["value"] = 1;
  expect_error(j, "twice");
  j = base;
  j["format"] = "onnx";
  expect_error(j, "format");
  j = base;
  j.erase("patch_size");
  expect_error(j, "patch_size");
  j = base;
  j["weights"] = "missing.pt";
  expect_error(j, "not found");
  write(dir / "bad.json", "{ not json");
  EXPECT_THROW(sagitta::load_card(dir / "bad.json"), sagitta::Error);
}

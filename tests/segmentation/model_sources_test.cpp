// MONAI bundles as models: the bundle's inference chain read into a card, run end to end, and
// everything the reader does not understand refused by name. The bundle wraps the RAS phantom
// network (testdata/models/ras_phantom: trained on RAS arrays, C x i x j x k tensors, as MONAI's
// LoadImage + Orientation("RAS") give) with a config in the style of MONAI's model zoo.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "ras_phantom.h"
#include "script_models.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model_sources.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/segmentation/segment.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;
using nlohmann::json;
using namespace sagitta::testing::ras;

namespace {

json inference_config() {
  return json::parse(R"({
    "imports": ["$import glob"],
    "bundle_root": ".",
    "image_key": "image",
    "network_def": {"_target_": "UNet", "spatial_dims": 3, "in_channels": 1, "out_channels": 3},
    "preprocessing_transforms": [
      {"_target_": "LoadImaged", "keys": "image"},
      {"_target_": "EnsureChannelFirstd", "keys": "image"},
      {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
      {"_target_": "Spacingd", "keys": ["image"], "pixdim": [2.0, 2.0, 2.0], "mode": "bilinear"},
      {"_target_": "ScaleIntensityRanged", "keys": "image", "a_min": 0, "a_max": 200, "b_min": 0.0, "b_max": 1.0, "clip": true},
      {"_target_": "CropForegroundd", "keys": "image", "source_key": "image", "margin": 2},
      {"_target_": "EnsureTyped", "keys": "image"}
    ],
    "preprocessing": {"_target_": "Compose", "transforms": "$@preprocessing_transforms"},
    "inferer": {"_target_": "SlidingWindowInferer", "roi_size": [32, 32, 24], "sw_batch_size": 4, "overlap": 0.5},
    "postprocessing": {"_target_": "Compose", "transforms": [
      {"_target_": "Activationsd", "keys": "pred", "softmax": true},
      {"_target_": "Invertd", "keys": "pred", "transform": "@preprocessing", "orig_keys": "image"},
      {"_target_": "AsDiscreted", "keys": "pred", "argmax": true},
      {"_target_": "SaveImaged", "keys": "pred", "output_dir": "$@bundle_root + '/eval'"}
    ]}
  })");
}

json metadata() {
  return json::parse(R"({
    "name": "RAS phantom bundle", "version": "0.1.0", "description": "two spheres, left and right",
    "network_data_format": {
      "inputs": {"image": {"type": "image", "modality": "CT", "num_channels": 1, "spatial_shape": [32, 32, 24]}},
      "outputs": {"pred": {"type": "image", "num_channels": 3, "channel_def": {"0": "background", "1": "left", "2": "right"}}}
    }
  })");
}

fs::path write_bundle(const json& inference, const json& meta) {
  const fs::path dir = sagitta::testing::scratch_dir() / "bundle";
  fs::remove_all(dir);
  fs::create_directories(dir / "configs");
  fs::create_directories(dir / "models");
  std::ofstream(dir / "configs" / "inference.json") << inference.dump(2);
  std::ofstream(dir / "configs" / "metadata.json") << meta.dump(2);
  fs::copy_file(sagitta::testing::source_dir() / "testdata/models/ras_phantom/model.pt", dir / "models" / "model.ts");
  return dir;
}

}  // namespace

TEST(MonaiBundle, TheInferenceChainBecomesACard) {
  const auto card = seg::open_model(write_bundle(inference_config(), metadata()));
  EXPECT_EQ(card.name, "RAS phantom bundle");
  EXPECT_EQ(card.orientation, "RAS");
  EXPECT_EQ(card.reorient, "closest");
  EXPECT_EQ(card.tensor_axes, "xyz");
  EXPECT_EQ(card.spacing, (std::vector<double>{2, 2, 2}));
  EXPECT_EQ(card.patch_size, (std::vector<int>{32, 32, 24}));
  EXPECT_EQ(card.window_weights, "constant");  // MONAI's default mode
  EXPECT_EQ(card.crop_foreground_margin, 2);
  ASSERT_TRUE(card.overlap.has_value());
  EXPECT_DOUBLE_EQ(*card.overlap, 0.5);
  ASSERT_EQ(card.channels.size(), 1u);
  const auto& n = card.channels[0].normalization;
  EXPECT_EQ(n.scheme, sagitta::Normalization::Scheme::Range);
  EXPECT_EQ(n.a_max, 200);
  EXPECT_TRUE(n.clip);
  ASSERT_EQ(card.labels.size(), 3u);
  EXPECT_EQ(card.labels[1].name, "left");
  EXPECT_EQ(card.labels[2].name, "right");
}

TEST(MonaiBundle, RunsEndToEndOnEveryStorageOrder) {
  const auto card = seg::open_model(write_bundle(inference_config(), metadata()));
  const auto model = sagitta::testing::load_model(card);
  const Phantom p{{10, -1, 1}, {-12, 2, -2}};
  for (const auto& d : {direction({1, 0, 0, 0, 1, 0, 0, 0, 1}), direction({-1, 0, 0, 0, -1, 0, 0, 0, 1}),
                        direction({0, 0, 1, 0, -1, 0, 1, 0, 0})}) {
    const auto image = stored(p, d, {40, 40, 30});
    seg::SegmentOptions o;
    o.window.overlap = *card.overlap;
    const auto result = seg::segment(model, {image}, o);
    // The network ran on the body's box only (CropForeground), the labels cover the whole input.
    EXPECT_NE(result.report.dump().find("cropped to the foreground"), std::string::npos);
    EXPECT_TRUE(seg::same_grid(*result.labels, *image));
    const double left = dice(*result.labels, p, 1), right = dice(*result.labels, p, 2);
    std::cout << "Dice left " << left << ", right " << right << std::endl;
    EXPECT_GT(left, 0.8);
    EXPECT_GT(right, 0.8);
  }
}

TEST(MonaiBundle, WhatIsNotUnderstoodIsRefusedByName) {
  const auto refused = [](const json& inference, const json& meta, const std::string& expected) {
    try {
      seg::open_model(write_bundle(inference, meta));
      ADD_FAILURE() << "accepted; expected a refusal naming " << expected;
    } catch (const seg::SegmentationError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  };
  json unknown = inference_config();
  unknown["preprocessing_transforms"].push_back({{"_target_", "RandGaussianNoised"}, {"keys", "image"}});
  unknown["preprocessing_transforms"].push_back({{"_target_", "HistogramNormalized"}, {"keys", "image"}});
  refused(unknown, metadata(), "not understood: RandGaussianNoise, HistogramNormalize");
  json code = inference_config();
  code["inferer"]["roi_size"] = "$[96] * 3";
  refused(code, metadata(), "Python expression");
  json dangling = inference_config();
  dangling["preprocessing"]["transforms"] = "$@no_such_list";
  refused(dangling, metadata(), "names nothing");
  json other_inferer = inference_config();
  other_inferer["inferer"] = {{"_target_", "SimpleInferer"}};
  refused(other_inferer, metadata(), "inferer SimpleInferer");
  json no_outputs = metadata();
  no_outputs["network_data_format"].erase("outputs");
  refused(inference_config(), no_outputs, "unexpected bundle content");
  const fs::path dir = write_bundle(inference_config(), metadata());
  fs::remove(dir / "models" / "model.ts");
  EXPECT_THROW(seg::open_model(dir), seg::SegmentationError);
  EXPECT_THROW(seg::open_model(sagitta::testing::scratch_dir() / "empty-folder-that-is-no-model"), sagitta::Error);
}

// configs/inference.yaml: the same config written by PyYAML (python3-yaml, what MONAI reads its
// YAML configs with) gives the same card; quoted and plain scalars resolve as PyYAML resolves them.
TEST(MonaiBundle, YamlConfigsReadAsPyYamlReadsThem) {
  if (sagitta::testing::run_command("/usr/bin/python3 -c 'import yaml' 2>/dev/null").exit_code != 0)
    GTEST_SKIP() << "python3-yaml is not installed (apt-get install python3-yaml)";
  json config = inference_config();
  config["inferer"]["overlap"] = 0.25;
  config["inferer"]["mode"] = "gaussian";
  const fs::path dir = write_bundle(config, metadata());
  const sagitta::ModelCard from_json = seg::open_model(dir);
  const auto r = sagitta::testing::run_command(
      "/usr/bin/python3 -c 'import json, sys, yaml; yaml.safe_dump(json.load(open(sys.argv[1])), open(sys.argv[2], \"w\"))' " +
      sagitta::testing::shell_quote(dir / "configs" / "inference.json") + " " +
      sagitta::testing::shell_quote(dir / "configs" / "inference.yaml"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::remove(dir / "configs" / "inference.json");
  const sagitta::ModelCard from_yaml = seg::open_model(dir);
  EXPECT_EQ(from_yaml.orientation, from_json.orientation);
  EXPECT_EQ(from_yaml.reorient, from_json.reorient);
  EXPECT_EQ(from_yaml.spacing, from_json.spacing);
  EXPECT_EQ(from_yaml.patch_size, from_json.patch_size);
  EXPECT_EQ(from_yaml.window_weights, "gaussian");
  ASSERT_TRUE(from_yaml.overlap.has_value());
  EXPECT_DOUBLE_EQ(*from_yaml.overlap, 0.25);
  EXPECT_EQ(from_yaml.crop_foreground_margin, from_json.crop_foreground_margin);
  EXPECT_EQ(from_yaml.channels[0].normalization.a_max, 200);
  EXPECT_TRUE(from_yaml.channels[0].normalization.clip);
  ASSERT_EQ(from_yaml.labels.size(), 3u);
  EXPECT_EQ(from_yaml.labels[2].name, "right");

  // Hand-written YAML: `clip: yes` is a boolean and `a_max: "200"` a string, as PyYAML has them
  // (the string is refused where a number belongs).
  std::string text = sagitta::testing::read_file(dir / "configs" / "inference.yaml");
  const auto at = text.find("clip: true");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at, 10, "clip: yes");
  std::ofstream(dir / "configs" / "inference.yaml") << text;
  EXPECT_TRUE(seg::open_model(dir).channels[0].normalization.clip);
  const auto quoted = text.find("a_max: 200");
  ASSERT_NE(quoted, std::string::npos) << text;
  text.replace(quoted, 10, "a_max: \"200\"");
  std::ofstream(dir / "configs" / "inference.yaml") << text;
  EXPECT_THROW(seg::open_model(dir), seg::SegmentationError);

  // Not YAML at all: one line naming the file.
  std::ofstream(dir / "configs" / "inference.yaml") << "preprocessing: [unclosed\n";
  try {
    seg::open_model(dir);
    ADD_FAILURE() << "broken YAML accepted";
  } catch (const seg::SegmentationError& e) {
    EXPECT_NE(std::string(e.what()).find("inference.yaml: not valid YAML"), std::string::npos) << e.what();
  }
}

// MONAI's Spacing places its grid on the source's first voxel with round(extent / pixdim) + 1
// voxels (compute_shape_offset); the bundle's model grid is that grid, checked against
// monai_spacing_reference.py (numpy + nibabel) for LPS-, RAS- and obliquely stored sources.
TEST(MonaiBundle, SpacingGridIsMonaisShapeAndOrigin) {
  if (sagitta::testing::run_command("/usr/bin/python3 -c 'import numpy, nibabel' 2>/dev/null").exit_code != 0)
    GTEST_SKIP() << "python3-numpy or python3-nibabel is not installed";
  const auto card = seg::open_model(write_bundle(inference_config(), metadata()));  // RAS, pixdim 2 2 2
  const fs::path dir = sagitta::testing::scratch_dir();
  sagitta::segmentation::Image::DirectionType lps, ras, oblique;
  lps.SetIdentity();
  ras.SetIdentity();
  ras[0][0] = ras[1][1] = -1;
  oblique.SetIdentity();
  const double t = 0.3;
  oblique[0][0] = std::cos(t), oblique[0][1] = -std::sin(t), oblique[1][0] = std::sin(t), oblique[1][1] = std::cos(t);
  int n = 0;
  for (const auto& direction : {lps, ras, oblique}) {
    auto image = sagitta::testing::make_volume({37, 29, 11}, {0.7, 0.9, 2.5}, [](double, double, double) { return 0.f; },
                                               {-11.3, 20.2, 105.0}, direction);
    json c;
    c["size"] = {37, 29, 11};
    c["spacing"] = {0.7, 0.9, 2.5};
    c["origin"] = {image->GetOrigin()[0], image->GetOrigin()[1], image->GetOrigin()[2]};
    for (unsigned a = 0; a < 3; ++a)
      for (unsigned b = 0; b < 3; ++b) c["direction"].push_back(direction[a][b]);
    c["axcodes"] = "RAS";
    c["pixdim"] = {2.0, 2.0, 2.0};
    const fs::path f = dir / ("case" + std::to_string(n++) + ".json");
    std::ofstream(f) << c.dump();
    const auto r = sagitta::testing::run_command(
        "/usr/bin/python3 " +
        sagitta::testing::shell_quote(sagitta::testing::source_dir() / "tests/segmentation/monai_spacing_reference.py") +
        " " + sagitta::testing::shell_quote(f));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const json ref = json::parse(r.out);
    const auto grid = seg::model_grid(*image, card);
    // tensor_axes xyz: the grid's memory axes are MONAI's array axes k j i.
    const auto size = grid->GetLargestPossibleRegion().GetSize();
    EXPECT_EQ((std::vector<std::size_t>{size[2], size[1], size[0]}), ref["shape"].get<std::vector<std::size_t>>()) << n;
    for (unsigned a = 0; a < 3; ++a) EXPECT_NEAR(grid->GetOrigin()[a], ref["origin_lps"][a].get<double>(), 1e-4) << n;
  }
}

// Invertd before AsDiscrete: MONAI takes the argmax after resampling the probabilities back, so
// the labels are the argmax of the source-grid probabilities; without Invertd the model grid's
// labels come back by nearest neighbour. Both find the phantom's organs.
TEST(MonaiBundle, InvertBeforeArgmaxTakesTheArgmaxOnTheSourceGrid) {
  const Phantom p{{10, -1, 1}, {-12, 2, -2}};
  const auto image = stored(p, direction({1, 0, 0, 0, 1, 0, 0, 0, 1}), {40, 40, 30});
  seg::SegmentOptions o;
  o.probabilities = true;
  const auto card = seg::open_model(write_bundle(inference_config(), metadata()));
  EXPECT_EQ(card.provenance.value("labels", ""), "argmax of the probabilities on the source grid");
  const auto inverted = seg::segment(sagitta::testing::load_model(card), {image}, o);
  EXPECT_NE(inverted.report.dump().find("argmax of the probabilities resampled linearly"), std::string::npos);
  ASSERT_EQ(inverted.probabilities.size(), 3u);
  const std::size_t n = inverted.labels->GetBufferedRegion().GetNumberOfPixels();
  std::size_t not_argmax = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t best = 0;
    for (std::size_t k = 1; k < 3; ++k)
      if (inverted.probabilities[k]->GetBufferPointer()[i] > inverted.probabilities[best]->GetBufferPointer()[i]) best = k;
    not_argmax += inverted.labels->GetBufferPointer()[i] != best;
  }
  EXPECT_EQ(not_argmax, 0u);
  EXPECT_GT(dice(*inverted.labels, p, 1), 0.8);

  json plain = inference_config();
  auto& post = plain["postprocessing"]["transforms"];
  post.erase(post.begin() + 1);  // no Invertd
  const auto nearest_card = seg::open_model(write_bundle(plain, metadata()));
  EXPECT_FALSE(nearest_card.provenance.contains("labels"));
  const auto nearest = seg::segment(sagitta::testing::load_model(nearest_card), {image}, o);
  EXPECT_EQ(nearest.report.dump().find("argmax of the probabilities resampled linearly"), std::string::npos);
  EXPECT_GT(dice(*nearest.labels, p, 1), 0.8);
}

// KeepLargestConnectedComponentd after AsDiscreted: its applied labels reach segment(), which keeps
// their largest components and says so in the report; the organs are still found.
TEST(MonaiBundle, KeepLargestConnectedComponentIsApplied) {
  json config = inference_config();
  auto& post = config["postprocessing"]["transforms"];
  post.insert(post.begin() + 3, json{{"_target_", "KeepLargestConnectedComponentd"}, {"keys", "pred"}, {"applied_labels", {1, 2}}});
  const auto card = seg::open_model(write_bundle(config, metadata()));
  EXPECT_EQ(card.provenance["keep_largest_component"], json::array({1, 2}));
  const Phantom p{{10, -1, 1}, {-12, 2, -2}};
  const auto image = stored(p, direction({1, 0, 0, 0, 1, 0, 0, 0, 1}), {40, 40, 30});
  const auto result = seg::segment(sagitta::testing::load_model(card), {image}, seg::SegmentOptions{});
  EXPECT_NE(result.report.dump().find("KeepLargestConnectedComponent"), std::string::npos) << result.report.dump();
  EXPECT_GT(dice(*result.labels, p, 1), 0.8);
}

TEST(MonaiBundle, CalibrationGivesTheBundleAReviewProfile) {
  // A bundle has no card to write a profile into: `sagitta calibrate` on the bundle folder writes a
  // review_profile.json, and `sagitta segment --review-profile` runs the input checks with it.
  namespace st = sagitta::testing;
  const fs::path bundle = write_bundle(inference_config(), metadata());
  const fs::path work = bundle.parent_path() / "calibrated_bundle";  // scratch_dir() would empty the folder
  fs::create_directories(work);
  std::string pairs;
  int k = 0;
  for (const Phantom& p : {Phantom{{10, -1, 1}, {-12, 2, -2}}, Phantom{{9, 1, -1}, {-11, -1, 2}}}) {
    const auto image = stored(p, direction({1, 0, 0, 0, 1, 0, 0, 0, 1}), {40, 40, 30});
    auto truth = sagitta::testing::make_volume(
        {40, 40, 30}, {1.2, 1.2, 1.2}, [&p](double x, double y, double z) { return float(p.label(x, y, z)); },
        {-1.2 * 39 / 2, -1.2 * 39 / 2, -1.2 * 29 / 2});
    const fs::path i = work / fmt::format("case{}.nrrd", k), l = work / fmt::format("case{}_seg.nrrd", k);
    sagitta::write_volumes({image}, i, {});
    sagitta::write_volumes({truth}, l, {});
    pairs += fmt::format(" --image {} --label {}", st::shell_quote(i), st::shell_quote(l));
    ++k;
  }
  const std::string sagitta = st::sagitta_executable().string();
  const auto run = st::run_command(fmt::format("{} calibrate --model {}{} -o {}", sagitta, st::shell_quote(bundle), pairs,
                                               st::shell_quote(work / "out")));
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_FALSE(fs::exists(work / "out/model.json")) << "a folder has no card to copy";
  const json profile = json::parse(std::ifstream(work / "out/review_profile.json"));
  EXPECT_EQ(profile["model"], "RAS phantom bundle");
  EXPECT_EQ(profile["training_profile"]["cases"], 2);
  // Inside the spheres the phantom is 200: the profile's intensities are those of the labels.
  EXPECT_NEAR(profile["training_profile"]["foreground_intensity"][0]["median"].get<double>(), 200, 1e-6);
  EXPECT_TRUE(profile["review_thresholds"].contains("min_mean_probability"));

  // Without the profile the input checks are skipped; with it they run and the case passes them.
  auto segment = [&](const std::string& extra, const std::string& name) {
    const auto r = st::run_command(fmt::format("{} segment --no-progress {} --model {} -o {} {}", sagitta,
                                               st::shell_quote(work / "case0.nrrd"), st::shell_quote(bundle),
                                               st::shell_quote(work / name), extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(std::ifstream(work / name / "report.json"));
  };
  auto skipped = [](const json& report, const std::string& check) {
    for (const auto& s : report["qa"]["skipped"])
      if (s["check"] == check) return true;
    return false;
  };
  EXPECT_TRUE(skipped(segment("", "plain"), "intensity"));
  const json with = segment("--review-profile " + st::shell_quote(work / "out/review_profile.json"), "profiled");
  EXPECT_FALSE(skipped(with, "intensity"));
  EXPECT_FALSE(skipped(with, "spacing"));
  for (const auto& f : with["qa"]["flags"]) EXPECT_NE(f["check"], "intensity") << f["what"];
  EXPECT_NEAR(with["qa"]["thresholds"]["min_mean_probability"].get<double>(),
              profile["review_thresholds"]["min_mean_probability"].get<double>(), 1e-12);

  // A file that is not a profile: one line naming it, a non-zero exit, nothing written.
  std::ofstream(work / "bad.json") << R"({"review_thresholds": {}})";
  const auto bad = st::run_command(fmt::format("{} segment --no-progress {} --model {} -o {} --review-profile {}", sagitta,
                                               st::shell_quote(work / "case0.nrrd"), st::shell_quote(bundle),
                                               st::shell_quote(work / "refused"), st::shell_quote(work / "bad.json")));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("--review-profile"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("not a review profile"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(work / "refused"));
}

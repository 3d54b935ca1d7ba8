// nnU-Net v2 results folders end to end: `open_model` + `segment` (and `sagitta segment --model
// <results folder>`) against nnunet_predictor.py, which predicts the same phantom the way nnU-Net's
// nnUNetPredictor does (Debian's python3-torch, numpy, scipy, skimage): labels identical and
// probabilities to 1e-3 with one fold and two, with and without mirroring, 3d_fullres and 2d.
// Then results folders that cannot run: one clear error each.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "sagitta/core/volume_io.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/model_sources.h"
#include "sagitta/segmentation/segment.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;
namespace seg = sagitta::segmentation;
using sagitta::Image;
using sagitta::testing::run_command;
using sagitta::testing::shell_quote;

namespace {

// The predictor's fixture and predictions, made once per test process.
const fs::path* reference(std::string* why) {
  static std::optional<fs::path> dir;
  static std::string error;
  static bool done = false;
  if (!done) {
    done = true;
    if (run_command("/usr/bin/python3 -c 'import torch, numpy, scipy.ndimage, skimage.transform' 2>/dev/null")
            .exit_code != 0) {
      error = "python3-torch, python3-numpy, python3-scipy or python3-skimage is not installed; no nnU-Net reference";
    } else {
      static const fs::path out = sagitta::testing::binary_dir() / ("nnunet_predict_" + std::to_string(::getpid()));
      fs::remove_all(out);
      std::atexit([] {
        std::error_code ec;
        fs::remove_all(out, ec);
      });
      const auto r = run_command("/usr/bin/python3 " +
                                 shell_quote(sagitta::testing::source_dir() / "tests/segmentation/nnunet_predictor.py") +
                                 " " + shell_quote(out));
      if (r.exit_code != 0) error = "nnunet_predictor.py failed: " + r.err;
      else dir = out;
    }
  }
  *why = error;
  return dir ? &*dir : nullptr;
}

#define REQUIRE_REFERENCE(var)                           \
  std::string why_;                                      \
  const fs::path* var##_ptr = reference(&why_);          \
  if (!var##_ptr && why_.rfind("python3-torch", 0) == 0) \
    GTEST_SKIP() << why_;                                \
  ASSERT_NE(var##_ptr, nullptr) << why_;                 \
  const fs::path var = *var##_ptr

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

// The phantom as an ITK image: case.json's ITK geometry over image.f32 (ITK buffer order).
Image::Pointer phantom(const fs::path& dir) {
  const auto c = read_json(dir / "case.json");
  auto img = Image::New();
  Image::SizeType size;
  for (unsigned a = 0; a < 3; ++a) size[a] = c["shape"][2 - a].get<std::size_t>();
  img->SetRegions(Image::RegionType(size));
  Image::SpacingType spacing;
  Image::PointType origin;
  Image::DirectionType direction;
  for (unsigned a = 0; a < 3; ++a) {
    spacing[a] = c["spacing"][a].get<double>();
    origin[a] = c["origin"][a].get<double>();
    for (unsigned b = 0; b < 3; ++b) direction[a][b] = c["direction"][a * 3 + b].get<double>();
  }
  img->SetSpacing(spacing);
  img->SetOrigin(origin);
  img->SetDirection(direction);
  img->Allocate();
  const auto v = sagitta::testing::read_floats(dir / "image.f32");
  EXPECT_EQ(v.size(), img->GetPixelContainer()->Size());
  std::copy(v.begin(), v.end(), img->GetBufferPointer());
  return img;
}

fs::path results_folder(const fs::path& dir, const std::string& configuration) {
  return dir / "nnUNet_results" / "Dataset321_Phantom" / ("nnUNetTrainer__nnUNetPlans__" + configuration);
}

struct Variant {
  std::string name, configuration;
  std::vector<std::string> folds;
  bool mirror;
};

void check_against_reference(const fs::path& dir, const Variant& v) {
  const auto image = phantom(dir);
  seg::ModelSourceOptions so;
  so.folds = v.folds;
  const sagitta::ModelCard card = seg::open_model(results_folder(dir, v.configuration), so);
  EXPECT_EQ(card.format, "nnunet");
  EXPECT_EQ(card.folds.size() + 1, v.folds.size());
  seg::ModelOptions mo;
  mo.threads = 2;
  const seg::Model model = seg::Model::load(card, mo);
  EXPECT_EQ(model.card().mirror_axes, v.configuration == "2d" ? "yx" : "zyx");  // the checkpoint's (0, 1[, 2])
  seg::SegmentOptions o;
  o.window.mirror = v.mirror;
  o.probabilities = true;
  const seg::Segmentation s = seg::segment(model, {image}, o);

  const fs::path ref = dir / v.name;
  const auto labels = sagitta::testing::read_floats(ref / "labels.f32");
  ASSERT_EQ(labels.size(), s.labels->GetPixelContainer()->Size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) differ += s.labels->GetBufferPointer()[i] != labels[i];
  EXPECT_EQ(differ, 0u) << v.name << ": labels that differ from nnU-Net's predictor";
  ASSERT_EQ(s.probabilities.size(), 3u);
  double worst = 0;
  for (std::size_t h = 0; h < 3; ++h) {
    const auto p = sagitta::testing::read_floats(ref / ("probabilities_" + std::to_string(h) + ".f32"));
    ASSERT_EQ(p.size(), s.probabilities[h]->GetPixelContainer()->Size());
    for (std::size_t i = 0; i < p.size(); ++i)
      worst = std::max(worst, std::abs(double(s.probabilities[h]->GetBufferPointer()[i]) - double(p[i])));
  }
  EXPECT_LT(worst, 1e-3) << v.name;
  std::cout << v.name << ": " << labels.size() << " voxels, " << differ << " labels differ, largest probability "
            << "difference " << worst << "\n";
  // Geometry: the source's, exactly.
  EXPECT_EQ(s.labels->GetLargestPossibleRegion(), image->GetLargestPossibleRegion());
  EXPECT_EQ(s.labels->GetOrigin(), image->GetOrigin());
  EXPECT_EQ(s.labels->GetSpacing(), image->GetSpacing());
  EXPECT_EQ(s.labels->GetDirection(), image->GetDirection());
  EXPECT_EQ(s.report["windows"]["folds"].get<int>(), int(v.folds.size()));
}

}  // namespace

TEST(NNUNetPredict, OneFold3D) {
  REQUIRE_REFERENCE(dir);
  check_against_reference(dir, {"3d_fold0", "3d_fullres", {"0"}, false});
}

TEST(NNUNetPredict, OneFold3DMirrored) {
  REQUIRE_REFERENCE(dir);
  check_against_reference(dir, {"3d_fold0_mirror", "3d_fullres", {"0"}, true});
}

TEST(NNUNetPredict, TwoFolds3DMirrored) {
  REQUIRE_REFERENCE(dir);
  check_against_reference(dir, {"3d_folds01_mirror", "3d_fullres", {"0", "1"}, true});
}

// Plans as nnU-Net < 2.3 wrote them (TotalSegmentator's are such): the architecture is rebuilt from
// UNet_class_name and the size keys, as nnU-Net's ConfigurationManager does; same weights, same labels.
TEST(NNUNetPredict, LegacyPlansFormat) {
  REQUIRE_REFERENCE(dir);
  const auto image = phantom(dir);
  const auto card = seg::open_model(dir / "nnUNet_results" / "Dataset321_Phantom" /
                                    "nnUNetTrainer__nnUNetPlansLegacy__3d_fullres", {});
  seg::ModelSourceOptions one;
  one.folds = {"0"};
  const auto legacy = seg::open_model(dir / "nnUNet_results" / "Dataset321_Phantom" /
                                      "nnUNetTrainer__nnUNetPlansLegacy__3d_fullres", one);
  EXPECT_EQ(card.folds.size(), 1u);  // fold_0 and fold_1 found
  EXPECT_EQ(legacy.unet["network_class_name"], "dynamic_network_architectures.architectures.unet.PlainConvUNet");
  seg::ModelOptions mo;
  mo.threads = 2;
  const seg::Segmentation s = seg::segment(seg::Model::load(legacy, mo), {image}, seg::SegmentOptions{});
  const auto labels = sagitta::testing::read_floats(dir / "3d_fold0" / "labels.f32");
  ASSERT_EQ(labels.size(), s.labels->GetPixelContainer()->Size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) differ += s.labels->GetBufferPointer()[i] != labels[i];
  EXPECT_EQ(differ, 0u);
}

TEST(NNUNetPredict, ResidualEncoder2DMirrored) {
  REQUIRE_REFERENCE(dir);
  check_against_reference(dir, {"2d_fold0_mirror", "2d", {"0"}, true});
}

// Several folds: per structure, the share of folds whose own labels differ from the ensemble's.
// Two copies of the same fold never disagree; the fixture's two different folds are measured.
TEST(NNUNetPredict, FoldDisagreementIsMeasuredAndZeroForIdenticalFolds) {
  REQUIRE_REFERENCE(dir);
  const auto image = phantom(dir);
  seg::ModelOptions mo;
  mo.threads = 2;
  auto confidence = [&](const fs::path& folder) {
    const seg::Model model = seg::Model::load(seg::open_model(folder, {}), mo);
    return seg::segment(model, {image}, seg::SegmentOptions{}).confidence;
  };
  const fs::path original = results_folder(dir, "3d_fullres");
  const auto two = confidence(original);
  std::size_t measured = 0;
  for (const auto& c : two) {
    if (c.voxels == 0) continue;
    ASSERT_TRUE(c.fold_disagreement.has_value()) << c.name;
    EXPECT_GE(*c.fold_disagreement, 0.0);
    EXPECT_LE(*c.fold_disagreement, 0.5) << c.name << ": with two folds one of them agrees with their average";
    EXPECT_FALSE(c.tta_disagreement.has_value()) << "no mirroring ran";
    std::cout << c.name << ": folds disagree on " << *c.fold_disagreement << " of it\n";
    ++measured;
  }
  EXPECT_GT(measured, 0u);

  const fs::path same = sagitta::testing::scratch_dir() / "same_folds" / original.filename();  // the name says the configuration
  fs::create_directories(same);
  fs::copy(original, same, fs::copy_options::recursive);
  fs::copy_file(original / "fold_0" / "checkpoint_final.pth", same / "fold_1" / "checkpoint_final.pth",
                fs::copy_options::overwrite_existing);
  for (const auto& c : confidence(same)) {
    if (c.voxels == 0) continue;
    EXPECT_EQ(c.fold_disagreement.value_or(-1), 0.0) << c.name;
  }

  seg::ModelSourceOptions one;
  one.folds = {"0"};
  const seg::Model single = seg::Model::load(seg::open_model(original, one), mo);
  for (const auto& c : seg::segment(single, {image}, seg::SegmentOptions{}).confidence)
    EXPECT_FALSE(c.fold_disagreement.has_value()) << "one set of weights";
}

// The command: every fold found by default (0 and 1 here), labels written in the source geometry.
TEST(NNUNetPredict, SegmentCommandRunsTheResultsFolder) {
  REQUIRE_REFERENCE(dir);
  const fs::path work = sagitta::testing::scratch_dir();
  sagitta::WriteOptions wo;
  wo.pixel_type = sagitta::OutputPixelType::Float;
  sagitta::write_volumes({phantom(dir)}, work / "ct.nrrd", wo);
  const auto r = run_command(sagitta::testing::sagitta_executable().string() + " segment --no-progress " +
                             shell_quote(work / "ct.nrrd") + " --model " +
                             shell_quote(results_folder(dir, "3d_fullres")) + " --mirror --threads 2 -o " +
                             shell_quote(work / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto labels = sagitta::read_volume(work / "out" / "labels.nrrd");
  const auto expected = sagitta::testing::read_floats(dir / "3d_folds01_mirror" / "labels.f32");
  ASSERT_EQ(labels->GetPixelContainer()->Size(), expected.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) differ += labels->GetBufferPointer()[i] != expected[i];
  EXPECT_EQ(differ, 0u);
  const auto report = read_json(work / "out" / "report.json");
  EXPECT_EQ(report["labels"][1]["name"], "liver") << report.dump();

  // --folds and --checkpoint choose the weights; one that is not there is one clear line.
  const auto missing = run_command(sagitta::testing::sagitta_executable().string() + " segment --no-progress " +
                                   shell_quote(work / "ct.nrrd") + " --model " +
                                   shell_quote(results_folder(dir, "3d_fullres")) + " --checkpoint best -o " +
                                   shell_quote(work / "out2"));
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("checkpoint_best.pth"), std::string::npos) << missing.err;
  EXPECT_FALSE(fs::exists(work / "out2" / "labels.nrrd"));
}

TEST(NNUNetPredict, ResultsFoldersThatCannotRun) {
  REQUIRE_REFERENCE(dir);
  const fs::path work = sagitta::testing::scratch_dir();
  const fs::path good = results_folder(dir, "3d_fullres");
  const auto expect_error = [](const fs::path& folder, const seg::ModelSourceOptions& o, const std::string& needle) {
    try {
      const auto card = seg::open_model(folder, o);
      seg::ModelOptions mo;
      mo.threads = 1;
      seg::Model::load(card, mo);
      ADD_FAILURE() << folder << " was accepted";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
    }
  };
  seg::ModelSourceOptions fold7;
  fold7.folds = {"7"};
  expect_error(good, fold7, "fold_7");
  seg::ModelSourceOptions twice;
  twice.folds = {"0", "0"};
  expect_error(good, twice, "twice");

  // No checkpoint at all.
  const fs::path bare = work / "Dataset321_Phantom" / "nnUNetTrainer__nnUNetPlans__3d_fullres";
  fs::create_directories(bare);
  fs::copy_file(good / "plans.json", bare / "plans.json");
  fs::copy_file(good / "dataset.json", bare / "dataset.json");
  expect_error(bare, {}, "checkpoint_final.pth");

  // The 2d configuration's weights under the 3d_fullres plans: the network does not fit.
  fs::create_directories(bare / "fold_0");
  fs::copy_file(results_folder(dir, "2d") / "fold_0" / "checkpoint_final.pth", bare / "fold_0" / "checkpoint_final.pth");
  expect_error(bare, {}, "encoder");

  // No dataset.json: not a results folder.
  fs::remove(bare / "dataset.json");
  expect_error(bare, {}, "not a model folder");
}

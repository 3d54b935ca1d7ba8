// nnU-Net v2 networks and checkpoints: tests/segmentation/nnunet_fixture.py (Debian's python3-torch)
// builds small PlainConvUNet / ResidualEncoderUNet networks with nnU-Net's module names, saves them
// in nnUNetTrainer's checkpoint layout with the plans' architecture entry, and computes logits for
// a fixed input. The native networks read those checkpoints without Python and must give the same
// logits (to 1e-4), with exactly nnU-Net's state-dict keys. Damaged and hostile checkpoints must
// give one SegmentationError each, and nothing in a pickle is ever executed.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include <unistd.h>

#include "model_impl.h"
#include "nnunet_networks.h"
#include "sagitta/segmentation/error.h"
#include "support/test_paths.h"
#include "torch_checkpoint.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;

namespace {

// The fixtures, made once per test process; nullopt (and the reason) when python3-torch is missing.
const fs::path* fixtures(std::string* why) {
  static std::optional<fs::path> dir;
  static std::string error;
  static bool done = false;
  if (!done) {
    done = true;
    if (sagitta::testing::run_command("/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null").exit_code != 0) {
      error = "python3-torch or python3-numpy is not installed (apt-get install python3-torch); no fixtures";
    } else {
      // One folder per test process (ctest -j runs the tests of this file in parallel), removed at exit.
      static const fs::path out = sagitta::testing::binary_dir() / ("nnunet_fixtures_" + std::to_string(::getpid()));
      fs::remove_all(out);
      std::atexit([] {
        std::error_code ec;
        fs::remove_all(out, ec);
      });
      const auto r = sagitta::testing::run_command(
          "/usr/bin/python3 " +
          sagitta::testing::shell_quote(sagitta::testing::source_dir() / "tests/segmentation/nnunet_fixture.py") + " " +
          sagitta::testing::shell_quote(out));
      if (r.exit_code != 0) error = "the fixture script failed: " + r.err;
      else dir = out;
    }
  }
  *why = error;
  return dir ? &*dir : nullptr;
}

#define REQUIRE_FIXTURES(var)                              \
  std::string why_;                                        \
  const fs::path* var##_ptr = fixtures(&why_);             \
  if (!var##_ptr && why_.rfind("python3-torch", 0) == 0)   \
    GTEST_SKIP() << why_;                                  \
  ASSERT_NE(var##_ptr, nullptr) << why_;                   \
  const fs::path var = *var##_ptr

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

seg::NNUNetNetwork build(const fs::path& dir) {
  const auto meta = read_json(dir / "meta.json");
  return seg::NNUNetNetwork(seg::NNUNetArchitecture::from_json(read_json(dir / "architecture.json"),
                                                               meta["input_channels"].get<int>(),
                                                               meta["num_classes"].get<int>()));
}

torch::Tensor floats(const fs::path& p, const std::vector<int64_t>& shape) {
  auto v = sagitta::testing::read_floats(p);
  return torch::from_blob(v.data(), shape, torch::kFloat).clone();
}

double compare_case(const fs::path& dir) {
  const auto meta = read_json(dir / "meta.json");
  auto net = build(dir);
  const auto checkpoint = seg::read_nnunet_checkpoint((dir / "checkpoint_final.pth").string());
  // Exactly nnU-Net's keys, in the state dict's order, duplicates (all_modules, decoder.encoder) included.
  std::vector<std::string> keys;
  for (const auto& [k, v] : checkpoint.network_weights) keys.push_back(k);
  EXPECT_EQ(keys, meta["keys"].get<std::vector<std::string>>());
  std::set<std::string> native;
  for (const auto& p : net->named_parameters()) native.insert(p.key());
  EXPECT_EQ(native, std::set<std::string>(keys.begin(), keys.end()));
  EXPECT_EQ(checkpoint.trainer_name, "nnUNetTrainer");
  EXPECT_EQ(checkpoint.mirroring_axes.value_or(std::vector<int>{}), meta["mirroring_axes"].get<std::vector<int>>());

  net->load_state_dict(checkpoint.network_weights, "test");
  net->eval();
  c10::InferenceMode guard;
  const auto x = floats(dir / "input.f32", meta["input"].get<std::vector<int64_t>>());
  const auto expected = floats(dir / "logits.f32", meta["logits"].get<std::vector<int64_t>>());
  const auto y = net->forward(x);
  EXPECT_EQ(y.sizes(), expected.sizes());
  if (y.sizes() != expected.sizes()) return 1e9;
  return (y - expected).abs().max().item<double>();
}

}  // namespace

TEST(NNUNetNetworks, PlainConvUNet3DMatchesPython) {
  REQUIRE_FIXTURES(dir);
  EXPECT_LT(compare_case(dir / "plain3d"), 1e-4);
}

TEST(NNUNetNetworks, PlainConvUNet2DMatchesPython) {
  REQUIRE_FIXTURES(dir);
  EXPECT_LT(compare_case(dir / "plain2d"), 1e-4);
}

TEST(NNUNetNetworks, ResidualEncoderUNet3DMatchesPython) {
  REQUIRE_FIXTURES(dir);
  EXPECT_LT(compare_case(dir / "resenc3d"), 1e-4);
}

TEST(NNUNetNetworks, ResidualEncoderUNet2DMatchesPython) {
  REQUIRE_FIXTURES(dir);
  EXPECT_LT(compare_case(dir / "resenc2d"), 1e-4);
}

TEST(NNUNetNetworks, ModelLoadsFormatNNUNet) {
  REQUIRE_FIXTURES(dir);
  const fs::path c = dir / "resenc3d";
  const auto meta = read_json(c / "meta.json");
  sagitta::ModelCard card;
  card.name = "resenc3d";
  card.format = "nnunet";
  card.weights = c / "checkpoint_final.pth";
  card.dimensions = 3;
  card.channels = {sagitta::InputChannel{"CT", {}}};
  card.labels.resize(2);
  card.labels[0].name = "background";
  card.labels[1].value = 1;
  card.labels[1].name = "organ";
  card.patch_size = {16, 16, 8};
  card.unet = read_json(c / "architecture.json");
  seg::ModelOptions o;
  o.threads = 2;
  const auto model = seg::Model::load(card, o);
  EXPECT_EQ(model.size_divisor(), 8);
  ASSERT_TRUE(model.impl().checkpoint_mirroring_axes.has_value());
  EXPECT_EQ(*model.impl().checkpoint_mirroring_axes, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(model.card().gradcam_layer, "encoder.3");  // the encoder's deepest activation by default

  const auto input = sagitta::testing::read_floats(c / "input.f32");
  const auto expected = sagitta::testing::read_floats(c / "logits.f32");
  std::vector<int64_t> shape;
  const auto logits = model.forward(input, meta["input"].get<std::vector<int64_t>>(), &shape);
  EXPECT_EQ(shape, meta["logits"].get<std::vector<int64_t>>());
  ASSERT_EQ(logits.size(), expected.size());
  double worst = 0;
  for (std::size_t i = 0; i < logits.size(); ++i) worst = std::max(worst, double(std::abs(logits[i] - expected[i])));
  EXPECT_LT(worst, 1e-4);

  // Grad-CAM: the activation is the bottleneck and part of the graph.
  const auto x = floats(c / "input.f32", meta["input"].get<std::vector<int64_t>>());
  const auto out = model.impl().run(x);
  ASSERT_TRUE(out.activation.defined());
  EXPECT_EQ(out.activation.sizes(), (std::vector<int64_t>{1, 24, 2, 2, 2}));
  const auto g = torch::autograd::grad({out.logits.select(1, 1).sum()}, {out.activation})[0];
  EXPECT_GT(g.abs().sum().item<double>(), 0.0);

  // Region-based models: more outputs than the labels' classes, stated as unet.num_outputs.
  card.unet["num_outputs"] = 3;
  try {
    seg::Model::load(card, o);
    ADD_FAILURE() << "a checkpoint with 2 outputs was accepted for 3";
  } catch (const seg::SegmentationError& e) {
    EXPECT_NE(std::string(e.what()).find("decoder.seg_layers"), std::string::npos) << e.what();
  }
}

TEST(NNUNetNetworks, WeightsThatDoNotFitThePlans) {
  REQUIRE_FIXTURES(dir);
  const fs::path c = dir / "plain3d";
  const auto checkpoint = seg::read_nnunet_checkpoint((c / "checkpoint_final.pth").string());
  auto expect_error = [&](seg::NNUNetNetwork net, std::vector<std::pair<std::string, torch::Tensor>> state,
                          const std::string& needle) {
    try {
      net->load_state_dict(state, "ck");
      ADD_FAILURE() << "accepted; expected an error naming " << needle;
    } catch (const seg::SegmentationError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_NE(what.find("do not fit the plans"), std::string::npos) << what;
    }
  };
  auto missing = checkpoint.network_weights;
  const std::string dropped = missing[5].first;
  missing.erase(missing.begin() + 5);
  expect_error(build(c), missing, "missing key '" + dropped + "'");
  auto extra = checkpoint.network_weights;
  extra.emplace_back("decoder.seg_layers.9.weight", torch::zeros({1}));
  expect_error(build(c), extra, "unexpected key 'decoder.seg_layers.9.weight'");
  // Plans with other features per stage than the weights were trained with.
  auto arch = read_json(c / "architecture.json");
  arch["arch_kwargs"]["features_per_stage"] = {4, 8, 16, 32};
  expect_error(seg::NNUNetNetwork(seg::NNUNetArchitecture::from_json(arch, 2, 3)), checkpoint.network_weights,
               "encoder.stages.3.0.convs.0.conv.weight' has shape 16x16x3x3x3 in the checkpoint but 32x16x3x3x3");
}

TEST(NNUNetNetworks, ArchitecturesItCannotBuildAreRefused) {
  REQUIRE_FIXTURES(dir);
  const auto base = read_json(dir / "plain3d" / "architecture.json");
  auto refused = [&](const std::function<void(nlohmann::json&)>& change, const std::string& needle) {
    auto a = base;
    change(a);
    try {
      seg::NNUNetArchitecture::from_json(a, 1, 2);
      ADD_FAILURE() << "accepted: " << a.dump();
    } catch (const seg::SegmentationError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  refused([](auto& a) { a["network_class_name"] = "dynamic_network_architectures.architectures.unet.ResidualUNet"; },
          "ResidualUNet");
  refused([](auto& a) { a["arch_kwargs"]["norm_op"] = "torch.nn.BatchNorm3d"; }, "BatchNorm3d");
  refused([](auto& a) { a["arch_kwargs"]["strides"] = {1, 2}; }, "strides");
  refused([](auto& a) { a["arch_kwargs"]["kernel_sizes"][1] = {3, 3}; }, "kernel_sizes");
  refused([](auto& a) { a["arch_kwargs"]["something_new"] = 1; }, "something_new");
  refused([](auto& a) { a["arch_kwargs"].erase("n_conv_per_stage"); }, "n_conv_per_stage");
  refused([](auto& a) { a["arch_kwargs"]["conv_op"] = "torch.nn.Conv1d"; }, "Conv1d");
  refused([](auto& a) { a = nlohmann::json::array(); }, "architecture");
}

TEST(NNUNetNetworks, DamagedCheckpointsGiveOneClearError) {
  REQUIRE_FIXTURES(dir);
  const fs::path scratch = sagitta::testing::scratch_dir();
  const std::string good = sagitta::testing::read_file(dir / "plain3d" / "checkpoint_final.pth");
  ASSERT_GT(good.size(), 1000u);
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(scratch / name, std::ios::binary) << bytes;
    return (scratch / name).string();
  };
  auto refused = [&](const std::string& path, const std::string& needle) {
    try {
      seg::read_nnunet_checkpoint(path);
      ADD_FAILURE() << path << " was accepted";
    } catch (const seg::SegmentationError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(needle), std::string::npos) << what;
      EXPECT_EQ(what.find('\n'), std::string::npos) << "one line: " << what;
    }
  };
  refused((scratch / "absent.pth").string(), "no such checkpoint file");
  refused(write("empty.pth", ""), "too short");
  refused(write("garbage.pth", std::string(4096, '\x17')), "not a zip archive");
  refused(write("half.pth", good.substr(0, good.size() / 2)), "not a readable torch.save archive");
  for (std::size_t cut : {std::size_t(4), std::size_t(100), good.size() - 22, good.size() - 1})
    refused(write("cut.pth", good.substr(0, cut)), "not a readable torch.save archive");
  refused((dir / "legacy.pth").string(), "legacy");
  refused((dir / "notorch.zip").string(), "not a readable torch.save archive");
  refused((dir / "short_storage.pth").string(), "beyond its storage");
  refused((dir / "missing_storage.pth").string(), "not a readable torch.save archive");
  // Mutated pickles: each one loads or fails cleanly.
  int loaded = 0, failed = 0;
  for (const auto& e : fs::directory_iterator(dir / "fuzz")) {
    try {
      seg::read_nnunet_checkpoint(e.path().string());
      ++loaded;
    } catch (const seg::SegmentationError& err) {
      ++failed;
      EXPECT_EQ(std::string(err.what()).find('\n'), std::string::npos) << err.what();
    }
  }
  EXPECT_EQ(loaded + failed, 120);
  EXPECT_GT(failed, 0);
  std::cout << "mutated pickles: " << loaded << " loaded, " << failed << " refused\n";
}

TEST(NNUNetNetworks, NothingInAPickleIsExecuted) {
  REQUIRE_FIXTURES(dir);
  // evil.pth carries os.system('touch <dir>/evil-was-run') in init_args; Python's unpickler would run it.
  const auto checkpoint = seg::read_nnunet_checkpoint((dir / "evil.pth").string());
  EXPECT_FALSE(fs::exists(dir / "evil-was-run"));
  EXPECT_FALSE(checkpoint.network_weights.empty());
  EXPECT_FALSE(checkpoint.mirroring_axes.has_value());  // saved as None
}

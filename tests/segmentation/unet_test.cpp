// The native U-Net: output and activation shapes in 2D and 3D, deep supervision, bad inputs,
// options JSON and checkpoint round trips.
#include <gtest/gtest.h>

#include "sagitta/segmentation/error.h"
#include "unet.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;

namespace {

seg::UNetOptions small(int dims, bool deep = false) {
  seg::UNetOptions o;
  o.dimensions = dims;
  o.in_channels = 1;
  o.num_classes = 3;
  o.base_channels = 4;
  o.depth = 3;
  o.deep_supervision = deep;
  return o;
}

std::vector<int64_t> sizes(const torch::Tensor& t) { return t.sizes().vec(); }

}  // namespace

TEST(UNet, Shapes3D) {
  torch::manual_seed(0);
  seg::UNet net(small(3));
  EXPECT_EQ(net->size_divisor(), 4);
  auto y = net->forward(torch::randn({2, 1, 8, 12, 16}));
  EXPECT_EQ(sizes(y), (std::vector<int64_t>{2, 3, 8, 12, 16}));
}

TEST(UNet, Shapes2D) {
  torch::manual_seed(0);
  seg::UNet net(small(2));
  auto y = net->forward(torch::randn({3, 1, 16, 20}));
  EXPECT_EQ(sizes(y), (std::vector<int64_t>{3, 3, 16, 20}));
}

TEST(UNet, ChannelsAndDepthFollowOptions) {
  seg::UNetOptions o = small(3);
  o.base_channels = 8;
  o.depth = 4;
  o.max_channels = 16;
  seg::UNet net(o);
  auto names = net->layer_names();
  EXPECT_EQ(names, (std::vector<std::string>{"encoder.0", "encoder.1", "encoder.2", "bottleneck", "decoder.0",
                                             "decoder.1", "decoder.2", "logits"}));
  net->eval();
  auto x = torch::randn({1, 1, 16, 16, 16});
  // Channels double per level and stop at max_channels; spatial size halves per level.
  auto e0 = net->forward_all(x, "encoder.0").activation;
  auto e2 = net->forward_all(x, "encoder.2").activation;
  auto b = net->forward_all(x, "bottleneck").activation;
  auto d2 = net->forward_all(x, "decoder.2").activation;
  EXPECT_EQ(sizes(e0), (std::vector<int64_t>{1, 8, 16, 16, 16}));
  EXPECT_EQ(sizes(e2), (std::vector<int64_t>{1, 16, 4, 4, 4}));
  EXPECT_EQ(sizes(b), (std::vector<int64_t>{1, 16, 2, 2, 2}));
  EXPECT_EQ(sizes(d2), (std::vector<int64_t>{1, 8, 16, 16, 16}));
  auto all = net->forward_all(x, "logits");
  EXPECT_TRUE(torch::equal(all.activation, all.logits));
  EXPECT_FALSE(net->forward_all(x).activation.defined());
}

TEST(UNet, ActivationIsPartOfTheGraph) {
  // Grad-CAM needs d(logit)/d(activation): the activation must be the tensor the logits came from.
  torch::manual_seed(1);
  seg::UNet net(small(2));
  net->eval();
  auto out = net->forward_all(torch::randn({1, 1, 8, 8}), "decoder.1");
  ASSERT_TRUE(out.activation.defined());
  auto grad = torch::autograd::grad({out.logits.select(1, 1).sum()}, {out.activation})[0];
  EXPECT_EQ(grad.sizes(), out.activation.sizes());
  EXPECT_GT(grad.abs().sum().item<double>(), 0.0);
}

TEST(UNet, DeepSupervisionOnlyWhileTraining) {
  torch::manual_seed(0);
  seg::UNet net(small(3, true));
  net->train();
  auto out = net->forward_all(torch::randn({1, 1, 8, 16, 16}));
  ASSERT_EQ(out.deep.size(), 1u);  // depth 3: half resolution only
  EXPECT_EQ(sizes(out.deep[0]), (std::vector<int64_t>{1, 3, 4, 8, 8}));
  net->eval();
  EXPECT_TRUE(net->forward_all(torch::randn({1, 1, 8, 16, 16})).deep.empty());
}

TEST(UNet, RefusesBadInputs) {
  seg::UNet net(small(3));
  EXPECT_THROW(net->forward(torch::randn({1, 1, 10, 16, 16})), seg::SegmentationError);  // not a multiple of 4
  EXPECT_THROW(net->forward(torch::randn({1, 2, 8, 16, 16})), seg::SegmentationError);   // 2 channels
  EXPECT_THROW(net->forward(torch::randn({1, 1, 16, 16})), seg::SegmentationError);      // 2D input
  EXPECT_THROW(net->forward_all(torch::randn({1, 1, 8, 8, 8}), "decoder.9"), seg::SegmentationError);
  nlohmann::json bad = small(3).to_json();
  bad["dimensions"] = 4;
  EXPECT_THROW(seg::UNetOptions::from_json(bad), seg::SegmentationError);
}

TEST(UNet, OptionsJsonRoundTrip) {
  seg::UNetOptions o = small(2, true);
  o.dropout = 0.25;
  o.max_channels = 64;
  const auto back = seg::UNetOptions::from_json(o.to_json());
  EXPECT_EQ(back.to_json(), o.to_json());
}

TEST(UNet, SaveLoadRoundTripGivesIdenticalLogits) {
  torch::manual_seed(3);
  seg::UNetOptions o = small(3);
  o.dropout = 0.1;
  seg::UNet net(o);
  // Move the instance-norm affine weights off their defaults so the test sees every parameter.
  {
    torch::NoGradGuard g;
    for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.1);
  }
  const auto path = (sagitta::testing::scratch_dir() / "net.pt").string();
  seg::save_unet(net, path);
  auto loaded = seg::load_unet(o, path);
  net->eval();
  auto x = torch::randn({1, 1, 8, 8, 8});
  EXPECT_TRUE(torch::equal(net->forward(x), loaded->forward(x)));
  EXPECT_FALSE(loaded->is_training());

  // A different architecture is refused with the parameter named...
  seg::UNetOptions wider = o;
  wider.base_channels = 8;
  try {
    seg::load_unet(wider, path);
    FAIL() << "loaded weights into a wider network";
  } catch (const seg::SegmentationError& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  // ...unless loading is lenient (fine-tuning with another number of classes: heads re-learnt).
  seg::UNetOptions more_classes = o;
  more_classes.num_classes = 5;
  seg::UNet other(more_classes);
  const auto skipped = seg::load_unet_weights(other, path, false);
  EXPECT_EQ(skipped, (std::vector<std::string>{"head.weight", "head.bias"}));
  EXPECT_THROW(seg::load_unet(o, path + ".missing"), seg::SegmentationError);
}

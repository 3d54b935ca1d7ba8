#include "script_models.h"

#include <torch/script.h>
#include <torch/torch.h>

#include "unet.h"

namespace sagitta::testing {
namespace fs = std::filesystem;
namespace seg = sagitta::segmentation;

sagitta::ModelCard test_card(int dimensions, int classes, int patch, double spacing) {
  sagitta::ModelCard c;
  c.name = "test";
  c.version = "1";
  c.dimensions = dimensions;
  sagitta::InputChannel ch;
  ch.name = "image";
  ch.normalization.scheme = sagitta::Normalization::Scheme::None;
  c.channels = {ch};
  c.spacing.assign(std::size_t(dimensions), spacing);
  c.patch_size.assign(std::size_t(dimensions), patch);
  for (int k = 0; k < classes; ++k) {
    sagitta::Label l;
    l.value = k;
    l.name = k == 0 ? "background" : "label" + std::to_string(k);
    c.labels.push_back(l);
  }
  return c;
}

fs::path write_script_model(const fs::path& dir, const std::string& kind, sagitta::ModelCard card) {
  fs::create_directories(dir);
  torch::manual_seed(7);
  const int d = card.dimensions;
  const int64_t cin = kind == "one_channel" ? 1 : int64_t(card.channels.size());
  const int64_t k = card.num_classes();
  const int64_t hidden = 4;
  const std::string conv = d == 3 ? "torch.conv3d" : "torch.conv2d";
  const std::string ones = d == 3 ? "[1, 1, 1]" : "[1, 1]";
  auto kernel = [&](int64_t out, int64_t in, int64_t size) {
    std::vector<int64_t> s = {out, in};
    for (int i = 0; i < d; ++i) s.push_back(size);
    return torch::randn(s) / std::sqrt(double(in * (d == 3 ? size * size * size : size * size)));
  };
  torch::jit::Module m("TestModel");
  std::string body;
  if (kind == "pointwise" || kind == "tuple" || kind == "conv3") {
    const int64_t size = kind == "conv3" ? 3 : 1;
    const std::string pad = kind == "conv3" ? (d == 3 ? "[1, 1, 1]" : "[1, 1]") : (d == 3 ? "[0, 0, 0]" : "[0, 0]");
    m.register_parameter("w1", kernel(hidden, cin, size), false);
    m.register_parameter("b1", torch::randn({hidden}) * 0.5, false);
    m.register_parameter("w2", kernel(k, hidden, 1) * 3, false);
    m.register_parameter("b2", torch::randn({k}) * 0.5, false);
    body = "    h = torch.tanh(" + conv + "(x, self.w1, self.b1, " + ones + ", " + pad + "))\n" +
           "    y = " + conv + "(h, self.w2, self.b2, " + ones + ", " + (d == 3 ? "[0, 0, 0]" : "[0, 0]") + ")\n";
    body += kind == "tuple" ? "    return (y, h)\n" : "    return y\n";
  } else if (kind == "threshold") {
    body = "    t = 10.0 * (x[:, 0:1] - 1.0)\n    return torch.cat([torch.zeros_like(t), t], 1)\n";
  } else if (kind == "x_gradient") {  // class 1 logit = in(x + 1) - in(x - 1) + 0.5 (zeros outside)
    if (d != 3) throw std::runtime_error("x_gradient: a 3D card");
    torch::Tensor w = torch::zeros({1, cin, 1, 1, 3});
    w[0][0][0][0][0] = -1, w[0][0][0][0][2] = 1;
    m.register_parameter("w1", w, false);
    body = "    g = torch.conv3d(x, self.w1, None, [1, 1, 1], [0, 0, 1])\n"
           "    return torch.cat([torch.zeros_like(g), g + 0.5], 1)\n";
  } else if (kind == "one_channel") {
    m.register_parameter("w1", kernel(k, 1, 1), false);
    body = "    return " + conv + "(x, self.w1, None, " + ones + ", " + (d == 3 ? "[0, 0, 0]" : "[0, 0]") + ")\n";
  } else {
    throw std::runtime_error("unknown test model kind " + kind);
  }
  m.define("def forward(self, x):\n" + body);
  const fs::path weights = dir / "model.pt";
  m.save(weights.string());
  card.format = "torchscript";
  card.weights = weights;
  card.sha256.clear();
  card.returns_activation = kind == "tuple";
  if (card.returns_activation) card.gradcam_layer = "hidden";
  const fs::path card_path = dir / "model.json";
  sagitta::save_card(card, card_path);
  return card_path;
}

fs::path write_native_unet(const fs::path& dir, sagitta::ModelCard card, int depth, int base_channels) {
  fs::create_directories(dir);
  torch::manual_seed(11);
  seg::UNetOptions o;
  o.dimensions = card.dimensions;
  o.in_channels = int(card.channels.size());
  o.num_classes = card.num_classes();
  o.depth = depth;
  o.base_channels = base_channels;
  seg::UNet net(o);
  seg::save_unet(net, (dir / "model.unet").string());
  card.format = "native-unet";
  card.unet = o.to_json();
  card.weights = dir / "model.unet";
  card.sha256.clear();
  card.returns_activation = false;
  const fs::path card_path = dir / "model.json";
  sagitta::save_card(card, card_path);
  return card_path;
}

fs::path write_threshold_model(const fs::path& dir) {
  auto card = test_card(3, 2, 16, 1.5);
  card.channels[0].normalization.scheme = sagitta::Normalization::Scheme::CT;
  card.channels[0].normalization.std = 100;
  card.labels[1].name = "dense";
  return write_script_model(dir, "threshold", card);
}

segmentation::Model load_model(const fs::path& card_path) { return load_model(sagitta::load_card(card_path)); }

segmentation::Model load_model(const sagitta::ModelCard& card) {
  segmentation::ModelOptions o;
  o.threads = 2;
  return segmentation::Model::load(card, o);
}

}  // namespace sagitta::testing

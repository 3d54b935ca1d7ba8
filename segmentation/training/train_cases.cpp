// Training cases on the model grid as tensors: the CT normalisation statistics, patch sampling
// with foreground oversampling and augmentation, and the full-volume prediction of validation.
#include "train_cases.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "sagitta/segmentation/error.h"
#include "normalise.h"

namespace sagitta::segmentation::detail {
namespace F = torch::nn::functional;

Normalization ct_normalization(const std::vector<CaseData>& cases) {
  std::vector<float> fg;
  for (const auto& c : cases)
    for (std::size_t i = 0; i < c.labels.size(); ++i)
      if (c.labels[i]) fg.push_back(c.image[i]);
  if (fg.empty()) throw SegmentationError("no foreground voxels to compute the CT normalisation from");
  std::sort(fg.begin(), fg.end());
  auto pct = [&](double q) { return double(fg[std::size_t(q * double(fg.size() - 1))]); };
  Normalization n;
  n.scheme = Normalization::Scheme::CT;
  n.clip_low = std::floor(pct(0.005));
  n.clip_high = std::ceil(pct(0.995));
  double sum = 0, sum2 = 0;
  for (float v : fg) {
    const double c = std::clamp(double(v), n.clip_low, n.clip_high);
    sum += c;
    sum2 += c * c;
  }
  n.mean = sum / double(fg.size());
  n.std = std::max(1e-3, std::sqrt(std::max(0.0, sum2 / double(fg.size()) - n.mean * n.mean)));
  return n;
}

float pad_value(const Normalization& n) {
  if (n.scheme == Normalization::Scheme::CT) return float((n.clip_low - n.mean) / n.std);
  return 0.0f;
}

Case make_case(CaseData&& data, const Normalization& n, float pad, int num_classes) {
  Case c;
  c.size = data.size;
  normalise(data.image, n);
  const std::vector<int64_t> shape{1, 1, data.size[2], data.size[1], data.size[0]};
  c.image = torch::from_blob(data.image.data(), shape, torch::kFloat32).clone() - pad;
  std::vector<float> lf(data.labels.begin(), data.labels.end());
  c.labels = torch::from_blob(lf.data(), shape, torch::kFloat32).clone();
  c.foreground.resize(std::size_t(num_classes));
  for (std::size_t i = 0; i < data.labels.size(); ++i) {
    const int v = data.labels[i];
    if (v >= num_classes)
      throw SegmentationError(fmt::format("{}: label value {} but the model has {} classes", data.name, v, num_classes));
    if (v) c.foreground[std::size_t(v)].push_back(std::int64_t(i));
  }
  for (int v = 1; v < num_classes; ++v)
    if (!c.foreground[std::size_t(v)].empty()) c.present.push_back(v);
  c.raw_labels = std::move(data.labels);
  return c;
}

// ---- patch sampling --------------------------------------------------------------------------

namespace {

void multiply(const double a[3][3], const double b[3][3], double r[3][3]) {
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) r[i][j] = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
}

// m = Rz(az) Rx(ax) Ry(ay), scaled by s.
void rotation_scale(double az, double ax, double ay, double s, double m[3][3]) {
  const double rz[3][3] = {{std::cos(az), -std::sin(az), 0}, {std::sin(az), std::cos(az), 0}, {0, 0, 1}};
  const double rx[3][3] = {{1, 0, 0}, {0, std::cos(ax), -std::sin(ax)}, {0, std::sin(ax), std::cos(ax)}};
  const double ry[3][3] = {{std::cos(ay), 0, std::sin(ay)}, {0, 1, 0}, {-std::sin(ay), 0, std::cos(ay)}};
  double t[3][3];
  multiply(rz, rx, t);
  multiply(t, ry, m);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) m[i][j] *= s;
}

}  // namespace

Sampler::Sampler(const TrainOptions& options, int dimensions, std::array<int, 3> patch, float pad)
    : o_(options), dims_(dimensions), patch_(patch), pad_(pad) {
  auto z = torch::arange(patch_[2], torch::kFloat32) - float(patch_[2] - 1) / 2;
  auto y = torch::arange(patch_[1], torch::kFloat32) - float(patch_[1] - 1) / 2;
  auto x = torch::arange(patch_[0], torch::kFloat32) - float(patch_[0] - 1) / 2;
  auto g = torch::meshgrid({z, y, x}, "ij");
  base_ = torch::stack({g[2].flatten(), g[1].flatten(), g[0].flatten()}, 1);
}

std::array<double, 3> Sampler::centre(const Case& c, std::mt19937& rng, bool foreground) const {
  std::array<double, 3> at{};
  if (foreground && !c.present.empty()) {
    const int cls = c.present[std::uniform_int_distribution<std::size_t>(0, c.present.size() - 1)(rng)];
    const auto& list = c.foreground[std::size_t(cls)];
    const auto idx = list[std::uniform_int_distribution<std::size_t>(0, list.size() - 1)(rng)];
    at = {double(idx % c.size[0]), double(idx / c.size[0] % c.size[1]), double(idx / (std::int64_t(c.size[0]) * c.size[1]))};
  } else {
    std::uniform_real_distribution<double> unit(0, 1);
    for (int a = 0; a < 3; ++a) at[a] = std::floor(unit(rng) * c.size[a]);
  }
  return at;
}

// The patch's axes in source voxel units: rotation * scale, with mirrored axes. 3 x 3, rows: patch
// axis, columns: source x y z.
torch::Tensor Sampler::axes(std::mt19937& rng) const {
  double m[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
  if (o_.augment) {
    std::uniform_real_distribution<double> unit(0, 1);
    const double deg = M_PI / 180.0;
    auto angle = [&] { return (unit(rng) * 2 - 1) * o_.rotation_degrees * deg; };
    const double az = angle();
    const double ax = dims_ == 3 ? angle() : 0.0, ay = dims_ == 3 ? angle() : 0.0;
    const double s = 1.0 + (unit(rng) * 2 - 1) * o_.scale_range;
    rotation_scale(az, ax, ay, s, m);
    for (int a = 0; a < dims_; ++a) {
      const char axis = "xyz"[a];
      if (o_.flip_axes.find(axis) != std::string::npos && unit(rng) < 0.5)
        for (auto& row : m) row[a] = -row[a];
    }
  }
  return torch::tensor({m[0][0], m[1][0], m[2][0], m[0][1], m[1][1], m[2][1], m[0][2], m[1][2], m[2][2]},
                       torch::kFloat32).view({3, 3});
}

// Brightness/contrast jitter and, sometimes, noise.
torch::Tensor Sampler::jitter(torch::Tensor image, std::mt19937& rng) const {
  if (!o_.augment || !(o_.intensity_range > 0)) return image;
  std::uniform_real_distribution<double> unit(0, 1);
  const double r = o_.intensity_range;
  const double contrast = 1.0 + (unit(rng) * 2 - 1) * r * 2;
  const double brightness = (unit(rng) * 2 - 1) * r;
  auto mean = image.mean();
  image = (image - mean) * contrast + mean + brightness;
  if (unit(rng) < 0.15) image = image + torch::randn_like(image) * (unit(rng) * r);
  return image;
}

std::pair<torch::Tensor, torch::Tensor> Sampler::sample(const Case& c, std::mt19937& rng, bool foreground) const {
  const auto at = centre(c, rng, foreground);
  auto src = base_.matmul(axes(rng)) + torch::tensor({float(at[0]), float(at[1]), float(at[2])});
  // grid_sample wants normalised coordinates in [-1, 1] (align_corners: -1 and 1 are the centres
  // of the first and last voxels).
  std::vector<float> scale(3), shift(3);
  for (int a = 0; a < 3; ++a) {
    scale[a] = c.size[a] > 1 ? 2.0f / float(c.size[a] - 1) : 0.0f;
    shift[a] = c.size[a] > 1 ? -1.0f : 0.0f;
  }
  auto grid = (src * torch::tensor(scale) + torch::tensor(shift)).view({1, patch_[2], patch_[1], patch_[0], 3});
  auto image = F::grid_sample(c.image, grid, F::GridSampleFuncOptions().mode(torch::kBilinear)
                                                 .padding_mode(torch::kZeros).align_corners(true)) + pad_;
  auto labels = F::grid_sample(c.labels, grid, F::GridSampleFuncOptions().mode(torch::kNearest)
                                                   .padding_mode(torch::kZeros).align_corners(true));
  image = jitter(image[0], rng);                   // 1 x pz x py x px
  labels = labels[0][0].round().to(torch::kLong);  // pz x py x px
  if (dims_ == 2) {
    image = image.squeeze(1);   // 1 x py x px
    labels = labels.squeeze(0); // py x px
  }
  return {image, labels};
}

// ---- prediction on the model grid ------------------------------------------------------------

// The volumes here are small (a few hundred thousand voxels at the model's spacing); 2D models
// run the slices in batches of 16.
std::vector<std::uint8_t> predict(UNet& net, const torch::Tensor& image_minus_pad, float pad,
                                  const std::array<int, 3>& size) {
  torch::NoGradGuard no_grad;
  const bool was_training = net->is_training();
  net->eval();
  const int div = net->size_divisor();
  auto up = [&](int n) { return (n + div - 1) / div * div; };
  torch::Tensor x = image_minus_pad[0];  // 1 x Z x Y x X
  torch::Tensor logits;
  if (net->options().dimensions == 3) {
    x = F::pad(x.unsqueeze(0), F::PadFuncOptions({0, up(size[0]) - size[0], 0, up(size[1]) - size[1], 0,
                                                  up(size[2]) - size[2]}));
    logits = net->forward(x + pad);
    logits = logits.slice(2, 0, size[2]).slice(3, 0, size[1]).slice(4, 0, size[0]);
    logits = logits[0];
  } else {
    x = F::pad(x.permute({1, 0, 2, 3}), F::PadFuncOptions({0, up(size[0]) - size[0], 0, up(size[1]) - size[1]}));
    std::vector<torch::Tensor> slices;
    for (int64_t z = 0; z < x.size(0); z += 16)  // bounded memory on long volumes
      slices.push_back(net->forward(x.slice(0, z, std::min<int64_t>(z + 16, x.size(0))) + pad));
    logits = torch::cat(slices, 0).slice(2, 0, size[1]).slice(3, 0, size[0]).permute({1, 0, 2, 3});
  }
  auto labels = logits.argmax(0).to(torch::kUInt8).contiguous();
  if (was_training) net->train();
  const auto* p = labels.data_ptr<std::uint8_t>();
  return {p, p + labels.numel()};
}

}  // namespace sagitta::segmentation::detail

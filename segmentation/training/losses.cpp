// The Dice + cross-entropy loss (and its deep-supervision sum) of the native U-Net: one
// definition for every training loop in the library.
#include "losses.h"

#include <vector>

namespace sagitta::segmentation::detail {
namespace F = torch::nn::functional;

torch::Tensor dice_ce_loss(const torch::Tensor& logits, const torch::Tensor& target) {
  const auto classes = logits.size(1);
  auto ce = F::cross_entropy(logits, target);
  auto probs = torch::softmax(logits, 1);
  // One-hot comes out channel-last (N x spatial... x C): move the classes to dimension 1.
  std::vector<int64_t> perm{0, logits.dim() - 1};
  for (int64_t d = 1; d < logits.dim() - 1; ++d) perm.push_back(d);
  auto onehot = F::one_hot(target, classes).permute(perm).to(torch::kFloat32);
  std::vector<int64_t> reduce{0};  // batch and space, per class
  for (int64_t d = 2; d < logits.dim(); ++d) reduce.push_back(d);
  auto inter = (probs * onehot).sum(reduce);
  auto denom = probs.sum(reduce) + onehot.sum(reduce);
  auto dice = (2 * inter + 1e-5) / (denom + 1e-5);
  return ce + 1 - dice.slice(0, 1).mean();
}

namespace {

torch::Tensor downsample_target(const torch::Tensor& target, int factor) {
  torch::Tensor t = target;
  for (int64_t d = 1; d < t.dim(); ++d) t = t.slice(d, 0, t.size(d), factor);
  return t;
}

}  // namespace

torch::Tensor deep_supervision_loss(const UNetOutput& out, const torch::Tensor& target) {
  double weight = 1, sum = 1;
  auto loss = dice_ce_loss(out.logits, target);
  for (std::size_t k = 0; k < out.deep.size(); ++k) {
    weight /= 2;
    sum += weight;
    loss = loss + weight * dice_ce_loss(out.deep[k], downsample_target(target, 1 << (k + 1)));
  }
  return loss / sum;
}

}  // namespace sagitta::segmentation::detail

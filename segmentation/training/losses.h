#pragma once
// The training loss of Sagitta's native U-Net, shared by volume training (train.cpp) and the demo
// pathology model (wsi_train.cpp): Dice + cross-entropy, and its deep-supervision sum.
#include <torch/torch.h>

#include "unet.h"

namespace sagitta::segmentation::detail {

// Cross-entropy plus (1 - soft Dice over the foreground classes). `logits` is N x C x spatial...
// (2D or 3D), `target` N x spatial... (int64 class values). The Dice is computed over the whole
// batch, so a patch without some class does not produce a meaningless 0/0.
torch::Tensor dice_ce_loss(const torch::Tensor& logits, const torch::Tensor& target);

// dice_ce_loss of the full-resolution output plus the deep-supervision outputs, each level down
// weighing half as much as the one above (targets subsampled to match); weights sum to one.
torch::Tensor deep_supervision_loss(const UNetOutput& out, const torch::Tensor& target);

}  // namespace sagitta::segmentation::detail

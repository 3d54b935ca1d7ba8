#pragma once
// Reading PyTorch checkpoints (torch.save's zip format) without Python: a restricted unpickler
// that understands only plain data (dicts, lists, tuples, strings, numbers, None, booleans) and
// tensors (torch._utils._rebuild_tensor_v2 over the archive's storages). Any other global or
// call (numpy scalars, torch.device, optimiser classes...) becomes an opaque value: nothing is ever
// imported or executed. Every length, index and tensor extent is checked against the file, so a
// damaged or hostile file gives one SegmentationError, never a crash.
// LibTorch's own torch::pickle_load cannot read these files (it lacks protocol 2's SETITEM,
// numpy's globals and torch.device). Includes LibTorch.
#include <torch/torch.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sagitta::segmentation {

// What Sagitta needs from an nnU-Net v2 checkpoint (fold_N/checkpoint_final.pth or _best.pth).
struct NNUNetCheckpoint {
  // network_weights, in the file's order, as float32 CPU tensors.
  std::vector<std::pair<std::string, torch::Tensor>> network_weights;
  // inference_allowed_mirroring_axes: nullopt when None or absent (no mirroring).
  std::optional<std::vector<int>> mirroring_axes;
  std::string trainer_name;  // empty when absent
};

// Throws SegmentationError naming `path` and the problem.
NNUNetCheckpoint read_nnunet_checkpoint(const std::string& path);

}  // namespace sagitta::segmentation

#!/usr/bin/python3
"""Straightforward Python reference for Sagitta's Grad-CAM family on one patch.

Loads a TorchScript model whose forward returns (logits, activation) (scripts/export_torchscript.py
--layer), runs it on a raw float32 input, and writes the raw map (float32, N x spatial) of
`--label` over the target (argmax == label, or a uint8 region file):

  score = sum (or mean) of logits[:, label] over the target
  g     = d score / d activation
  gradcam   : ReLU(sum_k mean(g_k) A_k)
  gradcam++ : alpha = g^2 / (2 g^2 + sum(A) g^3), w_k = sum(alpha ReLU(g)), ReLU(sum_k w_k A_k)
  hirescam  : ReLU(sum_k g_k A_k)
then upsampled (bilinear / trilinear, align_corners=False) to the input's spatial size.

Run with Debian's /usr/bin/python3 (python3-torch, the same version as Sagitta's LibTorch).
"""
import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True, help="float32 raw, little endian")
    p.add_argument("--shape", required=True, help="JSON list: N C [D] H W")
    p.add_argument("--label", type=int, required=True)
    p.add_argument("--method", default="gradcam", choices=["gradcam", "gradcam++", "hirescam"])
    p.add_argument("--score", default="sum", choices=["sum", "mean"])
    p.add_argument("--region", help="uint8 raw N x [D] x H x W, non-zero = target")
    p.add_argument("-o", "--output", required=True)
    args = p.parse_args()

    torch.set_num_threads(1)
    shape = json.loads(args.shape)
    x = torch.from_numpy(np.fromfile(args.input, dtype="<f4").reshape(shape))
    model = torch.jit.load(args.model).eval()
    logits, activation = model(x)
    if args.region:
        mask = torch.from_numpy(np.fromfile(args.region, dtype=np.uint8).reshape([shape[0]] + shape[2:])) != 0
    else:
        mask = logits.detach().argmax(1) == args.label
    mask = mask.float()
    score = (logits[:, args.label] * mask).flatten(1).sum(1)
    if args.score == "mean":
        score = score / mask.flatten(1).sum(1).clamp(min=1)
    (g,) = torch.autograd.grad(score.sum(), activation)
    a = activation.detach()
    spatial = tuple(range(2, a.dim()))
    if args.method == "gradcam":
        cam = (g.mean(dim=spatial, keepdim=True) * a).sum(1)
    elif args.method == "gradcam++":
        g2, g3 = g * g, g * g * g
        denom = 2 * g2 + a.sum(dim=spatial, keepdim=True) * g3
        alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, torch.ones_like(denom)), torch.zeros_like(denom))
        cam = ((alpha * F.relu(g)).sum(dim=spatial, keepdim=True) * a).sum(1)
    else:
        cam = (g * a).sum(1)
    cam = F.relu(cam)
    size = list(x.shape[2:])
    if list(cam.shape[1:]) != size:
        mode = "bilinear" if len(size) == 2 else "trilinear"
        cam = F.interpolate(cam[:, None], size=size, mode=mode, align_corners=False)[:, 0]
    cam.detach().numpy().astype("<f4").tofile(args.output)
    print(f"max {float(cam.max()):.6g} target voxels {int(mask.sum())}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Trains a tiny U-Net the way Python pipelines do (nibabel/MONAI style): on RAS-ordered arrays
whose tensors are C x i x j x k, then exports it with scripts/export_torchscript.py
--orientation RAS --tensor-axes xyz. The phantom has two identical spheres, one in the patient's
left half (label 1) and one in the right half (label 2): only where the voxels are tells them
apart, so a network fed a mirrored array swaps them. The C++ test (orientation_test.cpp) draws the
same phantom in LPS physical space and stores it in several orientations.

Phantom, in RAS mm about the centre: body ellipsoid with semi-axes 22, 15, 16 mm (value 100),
spheres of radius 6 mm (value 200) at R = -11 (left) and +11 (right) +-2 mm, A and S within
+-3 mm. Arrays are 32 x 32 x 24 voxels of 2 mm (one patch holds the whole body), voxel centres symmetric about 0, shifted by up
to +-1.5 mm at random while training.

usage: train_ras_model.py OUT_DIR   (testdata/models/ras_phantom is its output, seeded)
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
import export_torchscript  # noqa: E402

SHAPE = (32, 32, 24)  # i (R), j (A), k (S)
SPACING = 2.0
RADIUS = 6.0


def phantom(rng, shift):
    """Image and labels as (i, j, k) arrays; axis i points to the patient's right (RAS)."""
    axes = [(np.arange(n) - (n - 1) / 2) * SPACING + shift[a] for a, n in enumerate(SHAPE)]
    r, a, s = np.meshgrid(*axes, indexing="ij")
    image = np.where((r / 22) ** 2 + (a / 15) ** 2 + (s / 16) ** 2 <= 1, 100.0, 0.0)
    labels = np.zeros(SHAPE, np.int64)
    for value, side in ((1, -1.0), (2, 1.0)):  # 1: left (R < 0), 2: right
        c = (side * (11 + rng.uniform(-2, 2)), rng.uniform(-3, 3), rng.uniform(-3, 3))
        inside = (r - c[0]) ** 2 + (a - c[1]) ** 2 + (s - c[2]) ** 2 <= RADIUS ** 2
        image[inside] = 200.0
        labels[inside] = value
    image += rng.normal(0, 8, SHAPE)
    return image.astype(np.float32), labels


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    torch.set_num_threads(2)
    rng = np.random.default_rng(0)
    net = export_torchscript.BuiltinUNet(3, 1, 3, 8, 3)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    weights = torch.tensor([0.2, 1.0, 1.0])
    for step in range(160):
        batch = [phantom(rng, rng.uniform(-1.5, 1.5, 3)) for _ in range(4)]
        # The card's normalisation: range [0, 200] -> [0, 1], clipped.
        x = torch.from_numpy(np.stack([np.clip(b[0], 0, 200)[None] / 200 for b in batch]))
        y = torch.from_numpy(np.stack([b[1] for b in batch]))
        loss = torch.nn.functional.cross_entropy(net(x), y, weight=weights)
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    os.makedirs(out, exist_ok=True)
    state = os.path.join(out, "state.pth")
    torch.save(net.state_dict(), state)
    export_torchscript.main([
        "--builtin-unet", "--state-dict", state, "--base", "8", "--depth", "3",
        "--dimensions", "3", "--patch", "32", "32", "24", "--spacing", str(SPACING), str(SPACING), str(SPACING),
        "--channel", "phantom:range:0:200:0:1", "--labels", "left", "right",
        "--orientation", "RAS", "--tensor-axes", "xyz", "--name", "ras-phantom", "-o", out])
    print(f"final loss {loss.item():.4f}")


if __name__ == "__main__":
    main()

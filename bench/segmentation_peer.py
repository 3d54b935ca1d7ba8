#!/usr/bin/python3
"""The peer of Sagitta's sliding window, written the way a PyTorch user would: the same algorithm
(Gaussian importance map, sigma = patch/8, overlap, batches, accumulation in volume-sized buffers)
on the same preprocessed volume and the same TorchScript model. Prints one JSON object.

  segmentation_peer.py CARD RAW_VOLUME SIZE_X SIZE_Y SIZE_Z THREADS [BATCH] [OVERLAP]
"""
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch


def starts(size, patch, overlap):
    if size <= patch:
        return [0]
    step = max(1, int(math.floor(patch * (1 - overlap))))
    count = (size - patch + step - 1) // step + 1
    return [int(round(i * (size - patch) / (count - 1))) for i in range(count)]


def gaussian(patch_zyx, sigma_scale=1 / 8):
    axes = []
    for p in patch_zyx:
        i = torch.arange(p, dtype=torch.float64)
        c, s = (p - 1) / 2, sigma_scale * p
        axes.append(torch.exp(-(i - c) ** 2 / (2 * s * s)))
    g = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return (g / g.max()).clamp_min(1e-6).float()


def main():
    card_path, raw, sx, sy, sz, threads = sys.argv[1:7]
    batch = int(sys.argv[7]) if len(sys.argv) > 7 else 1
    overlap = float(sys.argv[8]) if len(sys.argv) > 8 else 0.5
    torch.set_num_threads(int(threads))
    card = json.load(open(card_path))
    model = torch.jit.load(os.path.join(os.path.dirname(card_path), card["weights"]))
    model.eval()
    if os.environ.get("PEER_OPTIMIZE") == "1":  # what Sagitta does on load: freeze + optimise
        model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
    classes = max(l["value"] for l in card["labels"]) + 1
    size = (int(sz), int(sy), int(sx))
    volume = torch.from_numpy(np.fromfile(raw, dtype="<f4").reshape(size))[None]  # C Z Y X
    patch = tuple(reversed(card["patch_size"]))
    with torch.inference_mode():
        model(torch.zeros((batch, 1) + patch))  # warm-up at the full patch, as the C++ bench
        t0 = time.perf_counter()
        g = gaussian(patch)
        sums = torch.zeros((classes,) + size)
        weights = torch.zeros(size)
        windows = [(z, y, x) for z in starts(size[0], patch[0], overlap) for y in starts(size[1], patch[1], overlap)
                   for x in starts(size[2], patch[2], overlap)]
        forward = 0.0
        for b in range(0, len(windows), batch):
            chunk = windows[b:b + batch]
            x = torch.stack([volume[:, z:z + patch[0], y:y + patch[1], xx:xx + patch[2]] for z, y, xx in chunk])
            tf = time.perf_counter()
            out = model(x)
            logits = out[0] if isinstance(out, tuple) else out
            forward += time.perf_counter() - tf
            logits = logits * g
            for i, (z, y, xx) in enumerate(chunk):
                sums[:, z:z + patch[0], y:y + patch[1], xx:xx + patch[2]] += logits[i]
                weights[z:z + patch[0], y:y + patch[1], xx:xx + patch[2]] += g
        sums /= weights
        total = time.perf_counter() - t0
    center = sums.reshape(classes, -1)[:, sums[0].numel() // 2]  # same voxel as the C++ checksum
    print(json.dumps({"threads": torch.get_num_threads(), "batch": batch, "windows": len(windows),
                      "sliding_window_s": total, "forward_in_window_s": forward,
                      "center_logit_sum": float(center.sum()),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()

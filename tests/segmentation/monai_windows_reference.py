#!/usr/bin/python3
"""MONAI's sliding-window layout and importance map, restated for Sagitta's tests from MONAI's
documented behaviour (monai.inferers.utils: _get_scan_interval, dense_patch_slices;
monai.data.utils.compute_importance_map with mode 'gaussian'), with Debian's python3-torch.
MONAI itself is not needed.

usage: monai_windows_reference.py CASES.json  ->  JSON on stdout
CASES.json: {"starts": [[image_size, roi_size, overlap], ...], "maps": [[[p0, p1, p2], sigma_scale], ...]}
"""
import json
import math
import sys

import torch


def scan_interval(image_size, roi_size, overlap):
    # _get_scan_interval, one axis: the whole axis when the roi is as large, else int(roi * (1 - o)), at least 1
    if roi_size == image_size:
        return roi_size
    interval = int(roi_size * (1 - overlap))
    return interval if interval > 0 else 1


def starts(image_size, roi_size, overlap):
    # dense_patch_slices, one axis: windows at k * interval until one reaches the end; each start
    # moved back so that the window ends inside the image
    interval = scan_interval(image_size, roi_size, overlap)
    num = int(math.ceil(float(image_size) / interval))
    count = next((d for d in range(num) if d * interval + roi_size >= image_size), None)
    count = count + 1 if count is not None else 1
    out = []
    for k in range(count):
        s = k * interval
        s -= max(s + roi_size - image_size, 0)
        out.append(s)
    return out


def importance_map(patch_size, sigma_scale):
    # compute_importance_map(mode='gaussian'): float32 1-D Gaussians centred on (p - 1) / 2 multiplied
    # out, then every weight raised to at least max(min, 1e-3)
    sigmas = [p * sigma_scale for p in patch_size]
    m = None
    for i, p in enumerate(patch_size):
        x = torch.arange(start=-(p - 1) / 2.0, end=(p - 1) / 2.0 + 1, dtype=torch.float)
        x = torch.exp(x ** 2 / (-2 * sigmas[i] ** 2))
        m = m.unsqueeze(-1) * x[(None,) * i] if i > 0 else x
    floor = max(torch.min(m).item(), 1e-3)
    return torch.clamp_(m.to(torch.float), min=floor)


def main():
    cases = json.load(open(sys.argv[1]))
    out = {"starts": [starts(*c) for c in cases["starts"]],
           "maps": [importance_map(p, s).flatten().tolist() for p, s in cases["maps"]]}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The straightforward Python version of `sagitta wsi segment`'s loop, as a peer for the benchmark.

openslide-python reads the tiles, PIL resizes them, torch runs the same native U-Net (its weights
loaded by name from Sagitta's checkpoint into the same architecture written in PyTorch), Gaussian
weights blend overlapping windows into whole-slide numpy accumulators, and the argmax is saved as
.npy. Tissue: saturation of a thumbnail, Otsu, no morphology. One thread reads, then the network
runs: no overlap of decoding and inference. The same tiling as Sagitta (windows on a fixed grid of
stride P - 2m), so the tile counts match and the label maps can be compared.

Usage: wsi_reference.py SLIDE MODEL_JSON OUT.npy [--assume-mpp X] [--threads N] [--batch B]
Prints one JSON line: tiles, seconds, tiles_per_second.
"""
import argparse
import json
import math
import time

import numpy as np
import openslide
import torch
import torch.nn as nn
from PIL import Image


def block(cin, cout, stride):
    return nn.Sequential(
        dict_modules([
            ("conv0", nn.Conv2d(cin, cout, 3, stride, 1, bias=False)),
            ("norm0", nn.InstanceNorm2d(cout, affine=True, eps=1e-5)),
            ("act0", nn.LeakyReLU(0.01, inplace=True)),
            ("conv1", nn.Conv2d(cout, cout, 3, 1, 1, bias=False)),
            ("norm1", nn.InstanceNorm2d(cout, affine=True, eps=1e-5)),
            ("act1", nn.LeakyReLU(0.01, inplace=True)),
        ]))


def dict_modules(items):
    from collections import OrderedDict
    return OrderedDict(items)


class UNet(nn.Module):
    """segmentation/src/unet.cpp's 2D network, layer for layer (names match its checkpoint)."""

    def __init__(self, o):
        super().__init__()
        ch = [min(o["base_channels"] << i, o["max_channels"]) for i in range(o["depth"])]
        self.encoder = nn.ModuleList()
        cin = o["in_channels"]
        for i in range(o["depth"] - 1):
            self.encoder.append(block(cin, ch[i], 1 if i == 0 else 2))
            cin = ch[i]
        self.bottleneck = block(cin, ch[-1], 2 if o["depth"] > 1 else 1)
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for j in range(o["depth"] - 1):
            level = o["depth"] - 2 - j
            self.up.append(nn.ConvTranspose2d(ch[level + 1], ch[level], 2, 2, bias=False))
            self.decoder.append(block(2 * ch[level], ch[level], 1))
        self.head = nn.Conv2d(ch[0], o["num_classes"], 1)

    def forward(self, x):
        skips = []
        for e in self.encoder:
            x = e(x)
            skips.append(x)
        x = self.bottleneck(x)
        for j, (u, d) in enumerate(zip(self.up, self.decoder)):
            x = d(torch.cat([skips[-1 - j], u(x)], 1))
        return self.head(x)


def load_model(card_path):
    card = json.load(open(card_path))
    net = UNet(card["unet"])
    stored = torch.jit.load(card_path.rsplit("/", 1)[0] + "/" + card["weights"])
    weights = {name: t for name, t in stored.named_parameters()}
    weights.update({name: t for name, t in stored.named_buffers()})
    missing = net.load_state_dict(weights, strict=True)
    net.eval()
    return card, net


def gaussian(p):
    i = np.arange(p, dtype=np.float64)
    c, s = (p - 1) / 2, p / 8
    g = np.exp(-((i - c) ** 2) / (2 * s * s))
    m = np.outer(g, g)
    return np.maximum(m / m.max(), 1e-6).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("slide")
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--assume-mpp", type=float, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--overlap", type=float, default=0.25)
    ap.add_argument("--min-tissue", type=float, default=0.05)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    t0 = time.time()
    card, net = load_model(a.model)
    slide = openslide.OpenSlide(a.slide)
    mpp = float(slide.properties.get(openslide.PROPERTY_NAME_MPP_X, 0) or a.assume_mpp)
    target = card["microns_per_pixel"]
    d = target / mpp
    level = slide.get_best_level_for_downsample(d + 1e-3)
    r = d / slide.level_downsamples[level]
    W, H = (math.ceil(s / d) for s in slide.dimensions)
    p = card["patch_size"][0]
    m = min(p // 4, round(p * a.overlap / 2 / 8) * 8)
    s = p - 2 * m
    cols, rows = math.ceil(W / s), math.ceil(H / s)

    # Tissue: saturation of a thumbnail, Otsu.
    thumb = np.asarray(slide.get_thumbnail((2048, 2048)).convert("RGB")).astype(np.float32)
    mx, mn = thumb.max(2), thumb.min(2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1), 0)
    hist, _ = np.histogram((sat * 255).round(), bins=256, range=(0, 256))
    w0 = np.cumsum(hist); w1 = w0[-1] - w0
    s0 = np.cumsum(hist * np.arange(256)); m0 = s0 / np.maximum(w0, 1); m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    cut = int(np.argmax(w0 * w1 * (m0 - m1) ** 2))
    tissue = sat >= max(0.04, (cut + 0.5) / 255)
    tds = slide.dimensions[0] / thumb.shape[1]

    norm_mean = np.array([c["normalization"]["mean"] for c in card["channels"]], np.float32)[:, None, None]
    norm_std = np.array([c["normalization"]["std"] for c in card["channels"]], np.float32)[:, None, None]
    classes = max(l["value"] for l in card["labels"]) + 1
    acc = np.zeros((classes, rows * s + 2 * m, cols * s + 2 * m), np.float32)  # whole slide in memory
    g = gaussian(p)
    windows = []
    for i in range(rows):
        for j in range(cols):
            y0, y1 = int(i * s * d / tds), int(math.ceil((i + 1) * s * d / tds))
            x0, x1 = int(j * s * d / tds), int(math.ceil((j + 1) * s * d / tds))
            area = max(1, (y1 - y0) * (x1 - x0))
            if tissue[y0:y1, x0:x1].sum() / area >= a.min_tissue and tissue[y0:y1, x0:x1].any():
                windows.append((i, j))
    t_infer = time.time()

    def read(i, j):
        ox, oy = j * s - m, i * s - m
        x, y = math.floor(ox * r), math.floor(oy * r)
        size = math.ceil(p * r) + 2
        region = slide.read_region((round(x * slide.level_downsamples[level]), round(y * slide.level_downsamples[level])),
                                   level, (size, size))
        bg = Image.new("RGB", region.size, (255, 255, 255))
        bg.paste(region, mask=region.split()[3])
        box = (ox * r - x, oy * r - y, ox * r - x + p * r, oy * r - y + p * r)
        tile = bg.resize((p, p), Image.BILINEAR, box=box)
        return (np.asarray(tile, np.float32).transpose(2, 0, 1) - norm_mean) / norm_std

    with torch.inference_mode():
        for b in range(0, len(windows), a.batch):
            batch = windows[b:b + a.batch]
            x = torch.from_numpy(np.stack([read(i, j) for i, j in batch]))
            y = net(x).numpy()
            for (i, j), logits in zip(batch, y):
                acc[:, i * s:i * s + p, j * s:j * s + p] += logits * g
    labels = acc[:, m:m + H, m:m + W].argmax(0).astype(np.uint8)
    labels[acc[:, m:m + H, m:m + W].max(0) == 0] = 0
    np.save(a.out, labels)
    t1 = time.time()
    print(json.dumps({"tiles": len(windows), "tiles_total": rows * cols, "seconds": t1 - t0,
                      "inference_seconds": t1 - t_infer, "tiles_per_second": len(windows) / (t1 - t_infer),
                      "size": [W, H]}))


if __name__ == "__main__":
    main()

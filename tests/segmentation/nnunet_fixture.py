#!/usr/bin/python3
"""Fixtures for Sagitta's native nnU-Net networks, written with Debian's python3-torch only.

For each case this builds a small network in the layout of nnU-Net v2's networks
(dynamic_network_architectures' PlainConvUNet and ResidualEncoderUNet, re-written here from their
structure: same module names, so state_dict() has nnU-Net's exact keys, duplicates included),
gives it random weights (instance-norm scales/shifts and biases too), saves a checkpoint dict
laid out like nnUNetTrainer.save_checkpoint (numpy floats in 'logging', a torch.device in
'init_args', an SGD optimizer state with momentum buffers), the plans' architecture entry as
JSON, and the logits for a fixed random input.

  nnunet_fixture.py OUTDIR            -> OUTDIR/<case>/{architecture.json, checkpoint_final.pth,
                                         input.f32, logits.f32, meta.json}, OUTDIR/evil.pth
  nnunet_fixture.py --bench OUTDIR    -> a 3d_fullres-sized PlainConvUNet, no logits
"""
import collections
import json
import os
import sys

import numpy as np
import torch
from torch import nn


def tolist(v, n):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


class ConvDropoutNormReLU(nn.Module):
    # conv (padding (k-1)//2) [-> dropout] -> norm -> nonlin; the same modules again in all_modules
    def __init__(self, dims, cin, cout, kernel, stride, bias, norm_kw, slope, nonlin=True):
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        norm = nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d
        kernel = tolist(kernel, dims)
        self.conv = conv(cin, cout, kernel, tolist(stride, dims), padding=[(k - 1) // 2 for k in kernel], bias=bias)
        self.norm = norm(cout, **norm_kw)
        ops = [self.conv, self.norm]
        if nonlin:
            self.nonlin = nn.LeakyReLU(negative_slope=slope, inplace=True)
            ops.append(self.nonlin)
        self.all_modules = nn.Sequential(*ops)

    def forward(self, x):
        return self.all_modules(x)


class StackedConvBlocks(nn.Module):
    def __init__(self, n, dims, cin, cout, kernel, stride, bias, norm_kw, slope):
        super().__init__()
        self.convs = nn.Sequential(*[
            ConvDropoutNormReLU(dims, cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, bias, norm_kw, slope)
            for i in range(n)])

    def forward(self, x):
        return self.convs(x)


class BasicBlockD(nn.Module):
    # out = nonlin2(conv2(conv1(x)) + skip(x)); skip = avg pool (kernel = stride) if strided, then a
    # bias-free 1x1 conv + norm if the channel count changes
    def __init__(self, dims, cin, cout, kernel, stride, bias, norm_kw, slope):
        super().__init__()
        stride = tolist(stride, dims)
        self.conv1 = ConvDropoutNormReLU(dims, cin, cout, kernel, stride, bias, norm_kw, slope)
        self.conv2 = ConvDropoutNormReLU(dims, cout, cout, kernel, 1, bias, norm_kw, slope, nonlin=False)
        self.nonlin2 = nn.LeakyReLU(negative_slope=slope, inplace=True)
        ops = []
        if any(s != 1 for s in stride):
            pool = nn.AvgPool3d if dims == 3 else nn.AvgPool2d
            ops.append(pool(stride, stride))
        if cin != cout:
            ops.append(ConvDropoutNormReLU(dims, cin, cout, 1, 1, False, norm_kw, slope, nonlin=False))
        self.skip = nn.Sequential(*ops) if ops else nn.Identity()

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        out += self.skip(x)
        return self.nonlin2(out)


class StackedResidualBlocks(nn.Module):
    def __init__(self, n, dims, cin, cout, kernel, stride, bias, norm_kw, slope):
        super().__init__()
        self.blocks = nn.Sequential(*[
            BasicBlockD(dims, cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, bias, norm_kw, slope)
            for i in range(n)])

    def forward(self, x):
        return self.blocks(x)


class Encoder(nn.Module):
    def __init__(self, residual, dims, cin, kw, slope):
        super().__init__()
        n = kw["n_stages"]
        feats = tolist(kw["features_per_stage"], n)
        kernels = tolist(kw["kernel_sizes"], n)
        strides = tolist(kw["strides"], n)
        bias, norm_kw = kw["conv_bias"], kw["norm_op_kwargs"]
        stages = []
        if residual:
            self.stem = StackedConvBlocks(1, dims, cin, feats[0], kernels[0], 1, bias, norm_kw, slope)
            cin = feats[0]
            depth = tolist(kw["n_blocks_per_stage"], n)
        else:
            depth = tolist(kw["n_conv_per_stage"], n)
        for s in range(n):
            if residual:
                stages.append(StackedResidualBlocks(depth[s], dims, cin, feats[s], kernels[s], strides[s], bias, norm_kw, slope))
            else:  # PlainConvEncoder wraps each stage in a Sequential
                stages.append(nn.Sequential(StackedConvBlocks(depth[s], dims, cin, feats[s], kernels[s], strides[s], bias, norm_kw, slope)))
            cin = feats[s]
        self.stages = nn.Sequential(*stages)
        self.residual = residual

    def forward(self, x):
        if self.residual:
            x = self.stem(x)
        skips = []
        for s in self.stages:
            x = s(x)
            skips.append(x)
        return skips


class Decoder(nn.Module):
    def __init__(self, encoder, dims, num_classes, kw, slope):
        super().__init__()
        self.encoder = encoder  # nnU-Net's decoder holds the encoder: decoder.encoder.* keys
        n = kw["n_stages"]
        feats = tolist(kw["features_per_stage"], n)
        kernels = tolist(kw["kernel_sizes"], n)
        strides = [tolist(s, dims) for s in tolist(kw["strides"], n)]
        dec = tolist(kw["n_conv_per_stage_decoder"], n - 1)
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        tconv = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        self.stages, self.transpconvs, self.seg_layers = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for s in range(1, n):
            below, skip = feats[-s], feats[-(s + 1)]
            self.transpconvs.append(tconv(below, skip, strides[-s], strides[-s], bias=kw["conv_bias"]))
            self.stages.append(StackedConvBlocks(dec[s - 1], dims, 2 * skip, skip, kernels[-(s + 1)], 1,
                                                 kw["conv_bias"], kw["norm_op_kwargs"], slope))
            self.seg_layers.append(conv(skip, num_classes, 1, 1, 0, bias=True))

    def forward(self, skips):
        x = skips[-1]
        for s in range(len(self.stages)):
            x = self.stages[s](torch.cat((self.transpconvs[s](x), skips[-(s + 2)]), 1))
        return self.seg_layers[-1](x)


class Net(nn.Module):
    def __init__(self, architecture, cin, num_classes):
        super().__init__()
        kw = architecture["arch_kwargs"]
        residual = architecture["network_class_name"].endswith("ResidualEncoderUNet")
        dims = 3 if kw["conv_op"].endswith("Conv3d") else 2
        slope = (kw.get("nonlin_kwargs") or {}).get("negative_slope", 0.01)
        self.encoder = Encoder(residual, dims, cin, kw, slope)
        self.decoder = Decoder(self.encoder, dims, num_classes, kw, slope)

    def forward(self, x):
        return self.decoder(self.encoder(x))


def architecture(residual, dims, n_stages, features, kernels, strides, depth, decoder, slope=None):
    conv = f"torch.nn.modules.conv.Conv{dims}d"
    kw = {
        "n_stages": n_stages, "features_per_stage": features, "conv_op": conv, "kernel_sizes": kernels,
        "strides": strides, ("n_blocks_per_stage" if residual else "n_conv_per_stage"): depth,
        "n_conv_per_stage_decoder": decoder, "conv_bias": True,
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True},
    }
    if slope is not None:
        kw["nonlin_kwargs"]["negative_slope"] = slope
    cls = "ResidualEncoderUNet" if residual else "PlainConvUNet"
    return {"network_class_name": f"dynamic_network_architectures.architectures.unet.{cls}", "arch_kwargs": kw,
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]}


CASES = {
    # name: (architecture, input channels, classes, input shape)
    "plain3d": (architecture(False, 3, 4, [4, 8, 16, 16], [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                             [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], [2, 2, 2, 2], [2, 2, 2]),
                2, 3, [1, 2, 8, 16, 24]),
    "plain2d": (architecture(False, 2, 5, [4, 8, 16, 32, 32], [[3, 3], [3, 3], [3, 3], [3, 3], [1, 3]],
                             [[1, 1], [2, 2], [2, 2], [2, 1], [2, 2]], [2, 2, 2, 2, 2], [2, 2, 2, 2], slope=0.02),
                1, 4, [2, 1, 32, 24]),
    "resenc3d": (architecture(True, 3, 4, [4, 8, 16, 24], [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                              [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], [1, 2, 2, 3], [1, 1, 1]),
                 1, 2, [1, 1, 8, 16, 16]),
    "resenc2d": (architecture(True, 2, 4, [6, 12, 24, 24], [[3, 3], [3, 3], [3, 3], [3, 1]],
                              [[1, 1], [2, 2], [2, 2], [1, 2]], [2, 2, 2, 2], [2, 1, 1]),
                 3, 5, [1, 3, 24, 32]),
}


def randomise(net, gen):
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / max(1, p[0].numel())) ** 0.5)


def checkpoint(net, arch, case, mirror_axes):
    # The layout of nnUNetTrainer.save_checkpoint, with an optimizer that has taken one step.
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True, weight_decay=3e-5)
    net.train()
    x = torch.randn(CASES[case][3])
    net(x).square().mean().backward()
    opt.step()
    net.eval()
    plans = {"dataset_name": "Dataset999_Fixture", "plans_name": "nnUNetPlans",
             "configurations": {"3d_fullres": {"architecture": arch}}}
    epochs = 3
    logging = {
        "mean_fg_dice": [np.float64(0.1 * i) for i in range(epochs)],
        "ema_fg_dice": [np.float64(0.05 * i) for i in range(epochs)],
        "dice_per_class_or_region": [[np.float64(0.2), np.float64(0.3)] for _ in range(epochs)],
        "train_losses": [np.float32(-0.1 * i) for i in range(epochs)],
        "val_losses": [np.float32(-0.2 * i) for i in range(epochs)],
        "lrs": [0.01 * (1 - i / epochs) ** 0.9 for i in range(epochs)],
        "epoch_start_timestamps": [1700000000.0 + i for i in range(epochs)],
        "epoch_end_timestamps": [1700000000.5 + i for i in range(epochs)],
    }
    return {
        "network_weights": net.state_dict(),
        "optimizer_state": opt.state_dict(),
        "grad_scaler_state": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5,
                              "growth_interval": 2000, "_growth_tracker": 0},
        "logging": logging,
        "_best_ema": np.float64(0.1),
        "current_epoch": epochs,
        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0,
                      "dataset_json": {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}},
                      "device": torch.device("cuda")},
        "trainer_name": "nnUNetTrainer",
        "inference_allowed_mirroring_axes": mirror_axes,
    }


class Evil:
    # Unpickling this in Python would run a shell command; Sagitta's reader must not.
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ("touch " + self.marker,))


def write_case(out, name, seed):
    arch, cin, classes, shape = CASES[name]
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = Net(arch, cin, classes)
    randomise(net, gen)
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    mirror = (0, 1, 2) if len(shape) == 5 else (0, 1)
    torch.save(checkpoint(net, arch, name, mirror), os.path.join(d, "checkpoint_final.pth"))
    # Reference logits from the saved weights (the optimizer step changed them after randomise).
    x = torch.randn(shape, generator=gen)
    with torch.no_grad():
        y = net(x)
    x.numpy().astype("<f4").tofile(os.path.join(d, "input.f32"))
    y.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    with open(os.path.join(d, "architecture.json"), "w") as f:
        json.dump(arch, f, indent=1)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump({"input_channels": cin, "num_classes": classes, "input": list(x.shape), "logits": list(y.shape),
                   "mirroring_axes": list(mirror), "keys": list(net.state_dict().keys())}, f)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--bench":
        bench(sys.argv[2])
        return
    out = sys.argv[1]
    torch.set_num_threads(1)
    for seed, name in enumerate(CASES):
        write_case(out, name, seed + 1)
    # A checkpoint whose pickle would run a command if it were evaluated, and one without mirroring.
    net = Net(CASES["plain3d"][0], 2, 3)
    ck = checkpoint(net, CASES["plain3d"][0], "plain3d", None)
    ck["init_args"]["evil"] = Evil(os.path.join(out, "evil-was-run"))
    torch.save(ck, os.path.join(out, "evil.pth"))
    damaged(out)


def damaged(out):
    """Damaged and hostile files: each must give one clear error, never a crash."""
    import random
    import zipfile
    src = os.path.join(out, "plain3d", "checkpoint_final.pth")
    torch.save({"network_weights": collections.OrderedDict(w=torch.zeros(2))}, os.path.join(out, "legacy.pth"),
               _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(os.path.join(out, "notorch.zip"), "w") as z:
        z.writestr("readme.txt", "not a checkpoint")
    with zipfile.ZipFile(src) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]

    def rewrite(path, change):
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
            for name, data in entries:
                data = change(name, data)
                if data is not None:
                    z.writestr(name, data)

    # A storage shorter than its tensors, and a missing storage record.
    rewrite(os.path.join(out, "short_storage.pth"),
            lambda n, d: d[: len(d) // 2] if n.endswith("/data/0") else d)
    rewrite(os.path.join(out, "missing_storage.pth"), lambda n, d: None if n.endswith("/data/1") else d)
    # Mutated pickles (random bytes changed, cut short, inserted) inside an otherwise valid archive.
    rng = random.Random(7)
    os.makedirs(os.path.join(out, "fuzz"), exist_ok=True)
    for k in range(120):
        def mutate(n, d):
            if not n.endswith("data.pkl"):
                return d
            b = bytearray(d)
            kind = k % 3
            if kind == 0:
                for _ in range(rng.randint(1, 8)):
                    b[rng.randrange(len(b))] = rng.randrange(256)
            elif kind == 1:
                b = b[: rng.randrange(len(b))]
            else:
                at = rng.randrange(len(b))
                b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
            return bytes(b)
        rewrite(os.path.join(out, "fuzz", f"{k:03d}.pth"), mutate)


def bench(out):
    # A 3d_fullres-sized PlainConvUNet as nnU-Net plans it for an isotropic CT dataset.
    n = 6
    arch = architecture(False, 3, n, [32, 64, 128, 256, 320, 320], [[3, 3, 3]] * n,
                        [[1, 1, 1]] + [[2, 2, 2]] * (n - 1), [2] * n, [2] * (n - 1))
    net = Net(arch, 1, 4)
    randomise(net, torch.Generator().manual_seed(0))
    os.makedirs(out, exist_ok=True)
    torch.save(checkpoint_bench(net, arch), os.path.join(out, "checkpoint_final.pth"))
    with open(os.path.join(out, "architecture.json"), "w") as f:
        json.dump(arch, f, indent=1)


def checkpoint_bench(net, arch):
    return {"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
            "inference_allowed_mirroring_axes": (0, 1, 2), "init_args": {"device": torch.device("cpu")}}


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Export a PyTorch segmentation network to Sagitta's model contract: model.pt (TorchScript) + model.json.

The network is traced inside a wrapper that returns (logits, activation), where the activation is
the output of a chosen layer captured with a forward hook. C++ TorchScript has no hooks, so this is
how Grad-CAM gets an inner activation from any PyTorch / MONAI / nnU-Net network.

Uses Debian's python3-torch (same version as Sagitta's LibTorch): run it with /usr/bin/python3.

  # your own network: a Python file defining a class, its constructor arguments, a state dict
  /usr/bin/python3 scripts/export_torchscript.py --model-file net.py --model-class UNet \
      --model-args '{"in_channels": 1, "classes": 3}' --state-dict weights.pth \
      --dimensions 3 --patch 96 96 96 --spacing 1.5 1.5 1.5 --channel CT:ct:0:1:-1024:3071 \
      --labels liver spleen --layer decoder.0 -o my_model/

  # a small built-in U-Net with random weights (tests, benchmarks)
  /usr/bin/python3 scripts/export_torchscript.py --builtin-unet --base 8 --depth 3 ... -o out/

Writes OUT/model.pt and OUT/model.json; with --reference DIR also a seeded input and the logits
Python computes for it (raw little-endian float32 + shapes.json), to check other runtimes against.
"""
import argparse
import hashlib
import importlib.util
import json
import os
import sys

try:
    import torch
    import torch.nn as nn
except ImportError:  # pragma: no cover - reported to the caller, who may skip
    sys.stderr.write("export_torchscript.py: PyTorch is not installed for this interpreter "
                     "(Debian: apt-get install python3-torch, then use /usr/bin/python3)\n")
    sys.exit(4)


class _ConvBlock(nn.Module):
    """Two (conv 3, instance norm, leaky ReLU) layers."""

    def __init__(self, dims, cin, cout):
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        norm = nn.InstanceNorm3d if dims == 3 else nn.InstanceNorm2d
        self.layers = nn.Sequential(
            conv(cin, cout, 3, padding=1), norm(cout, affine=True), nn.LeakyReLU(0.01, inplace=True),
            conv(cout, cout, 3, padding=1), norm(cout, affine=True), nn.LeakyReLU(0.01, inplace=True))

    def forward(self, x):
        return self.layers(x)


class BuiltinUNet(nn.Module):
    """A plain U-Net: strided-conv downsampling, transposed-conv upsampling, skip concatenation."""

    def __init__(self, dims=3, in_channels=1, classes=2, base=8, depth=3):
        super().__init__()
        conv = nn.Conv3d if dims == 3 else nn.Conv2d
        up = nn.ConvTranspose3d if dims == 3 else nn.ConvTranspose2d
        widths = [base * 2 ** i for i in range(depth)]
        self.encoder = nn.ModuleList()
        self.down = nn.ModuleList()
        cin = in_channels
        for i, w in enumerate(widths[:-1]):
            self.encoder.append(_ConvBlock(dims, cin, w))
            self.down.append(conv(w, w, 2, stride=2))
            cin = w
        self.bottleneck = _ConvBlock(dims, cin, widths[-1])
        self.up = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for w_skip, w_low in reversed(list(zip(widths[:-1], widths[1:]))):
            self.up.append(up(w_low, w_skip, 2, stride=2))
            self.decoder.append(_ConvBlock(dims, 2 * w_skip, w_skip))
        self.head = conv(widths[0], classes, 1)

    def forward(self, x):
        skips = []
        for enc, down in zip(self.encoder, self.down):
            x = enc(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.up, self.decoder, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class WithActivation(nn.Module):
    """Returns (logits, output of `layer`) so TorchScript callers see the Grad-CAM activation."""

    def __init__(self, net, layer):
        super().__init__()
        self.net = net
        modules = dict(net.named_modules())
        if layer not in modules:
            names = [n for n in modules if n]
            raise SystemExit(f"export_torchscript.py: no layer '{layer}' in the network; layers: {', '.join(names[:60])}")
        self._activation = None
        modules[layer].register_forward_hook(self._keep)

    def _keep(self, module, inputs, output):
        self._activation = output

    def forward(self, x):
        logits = self.net(x)
        return logits, self._activation


SCHEMES = ("ct", "zscore", "fixed", "none", "percentile", "minmax", "range")


def parse_channel(text):
    """NAME:SCHEME[:ARGS...] or NAME:{json normalization} -> card channel.

    ct[:MEAN:STD[:CLIP_LOW:CLIP_HIGH]]  fixed[:MEAN:STD]  zscore[:MASK]  minmax[:MASK]
    percentile:LOW:HIGH[:zscore|B_MIN:B_MAX]  range:A_MIN:A_MAX:B_MIN:B_MAX[:noclip]  none
    MASK is auto, all or nonzero (the voxels per-volume statistics use)."""
    name, _, rest = text.partition(":")
    if rest.startswith("{"):
        norm = json.loads(rest)
        if norm.get("scheme", "zscore") not in SCHEMES:
            raise SystemExit(f"export_torchscript.py: unknown normalization in --channel {text}")
        return {"name": name, "normalization": norm}
    parts = [name] + (rest.split(":") if rest else [])
    scheme = parts[1] if len(parts) > 1 else "zscore"
    if scheme not in SCHEMES:
        raise SystemExit(f"export_torchscript.py: unknown normalization '{scheme}' in --channel {text}")
    args = parts[2:]
    norm = {"scheme": scheme}
    try:
        if scheme in ("ct", "fixed"):
            norm["mean"] = float(args[0]) if len(args) > 0 else 0.0
            norm["std"] = float(args[1]) if len(args) > 1 else 1.0
        if scheme == "ct":
            norm["clip"] = [float(args[2]) if len(args) > 2 else -1024.0, float(args[3]) if len(args) > 3 else 3071.0]
        if scheme in ("zscore", "minmax") and args:
            norm["mask"] = args[0]
        if scheme == "percentile":
            norm["percentiles"] = [float(args[0]), float(args[1])]
            if len(args) > 2 and args[2] == "zscore":
                norm["then"] = "zscore"
            elif len(args) > 3:
                norm["b"] = [float(args[2]), float(args[3])]
        if scheme == "range":
            norm["a"] = [float(args[0]), float(args[1])]
            norm["b"] = [float(args[2]), float(args[3])]
            norm["clip"] = not (len(args) > 4 and args[4] == "noclip")
    except (IndexError, ValueError):
        raise SystemExit(f"export_torchscript.py: --channel {text}: see --help for the values {scheme} needs")
    return {"name": name, "normalization": norm}


def check_orientation(code):
    if code == "stored":
        return code
    code = code.upper()
    axes = sorted(g for c in code for g, pair in enumerate(("LR", "PA", "SI")) if c in pair)
    if len(code) != 3 or axes != [0, 1, 2]:
        raise SystemExit(f"export_torchscript.py: --orientation {code}: expected a code such as LPS or RAS, or 'stored'")
    return code


PALETTE = [[0, 0, 0], [221, 130, 101], [157, 108, 162], [185, 102, 83], [216, 101, 79], [241, 214, 145],
           [128, 174, 128], [111, 184, 210], [230, 220, 70], [244, 214, 49], [0, 151, 206]]


def load_user_network(args):
    spec = importlib.util.spec_from_file_location("user_network", args.model_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cls = getattr(module, args.model_class)
    net = cls(**json.loads(args.model_args))
    if args.state_dict:
        state = torch.load(args.state_dict, map_location="cpu")
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        net.load_state_dict(state)
    return net


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--builtin-unet", action="store_true", help="export the built-in U-Net (random weights unless --state-dict)")
    src.add_argument("--model-file", help="Python file defining the network class")
    p.add_argument("--model-class", default="UNet")
    p.add_argument("--model-args", default="{}", help="JSON object of constructor arguments")
    p.add_argument("--state-dict", help="weights (torch.save of a state dict)")
    p.add_argument("--base", type=int, default=8, help="built-in U-Net: channels at the first level")
    p.add_argument("--depth", type=int, default=3, help="built-in U-Net: resolution levels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dimensions", type=int, choices=(2, 3), default=3)
    p.add_argument("--patch", type=int, nargs="+", required=True, help="patch size x y [z]")
    p.add_argument("--spacing", type=float, nargs="+", required=True, help="target spacing in mm, x y [z]")
    p.add_argument("--channel", action="append", default=[],
                   help="NAME:SCHEME[:ARGS] or NAME:{json}, once per input channel (see parse_channel)")
    p.add_argument("--orientation", default="LPS",
                   help="where the axes of the arrays the network was trained on point: LPS (ITK, DICOM), RAS "
                        "(nibabel's canonical arrays, MONAI's Orientation('RAS')), any 3-letter code, or 'stored'")
    p.add_argument("--reorient", choices=("grid", "closest"),
                   help="grid: resample into an axis-aligned grid of that orientation; closest: permute and flip "
                        "the stored axes (nibabel, MONAI). Default: grid, closest for 'stored'")
    p.add_argument("--tensor-axes", default="zyx",
                   help="the tensor's spatial dimensions D H W by array axis: zyx (SimpleITK, nnU-Net) or xyz (nibabel, MONAI)")
    p.add_argument("--mirror-axes", default="xyz", help="array axes test-time mirroring may flip ('' for none)")
    p.add_argument("--labels", nargs="+", required=True, help="foreground label names (values 1, 2, ...)")
    p.add_argument("--layer", default="", help="module name whose activation forward also returns (Grad-CAM)")
    p.add_argument("--name", default="model")
    p.add_argument("--version", default="1")
    p.add_argument("--description", default="")
    p.add_argument("--reference", help="folder for a seeded input and Python's logits (float32 raw)")
    p.add_argument("-o", "--output", required=True, help="folder for model.pt and model.json")
    args = p.parse_args(argv)

    if len(args.patch) != args.dimensions or len(args.spacing) != args.dimensions:
        raise SystemExit("export_torchscript.py: --patch and --spacing need one value per dimension (x y [z])")
    channels = [parse_channel(c) for c in (args.channel or ["image:zscore"])]
    torch.manual_seed(args.seed)
    classes = len(args.labels) + 1
    if args.builtin_unet:
        net = BuiltinUNet(args.dimensions, len(channels), classes, args.base, args.depth)
        if args.state_dict:
            net.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
    else:
        net = load_user_network(args)
    net.eval()
    wrapper = WithActivation(net, args.layer) if args.layer else net
    wrapper.eval()

    orientation = check_orientation(args.orientation)
    reorient = args.reorient or ("closest" if orientation == "stored" else "grid")
    if sorted(args.tensor_axes) != ["x", "y", "z"]:
        raise SystemExit("export_torchscript.py: --tensor-axes must be a permutation of xyz")
    if args.dimensions == 2 and args.tensor_axes != "zyx":
        raise SystemExit("export_torchscript.py: 2D models slice along z: --tensor-axes must be zyx")
    # TorchScript and NC[D]HW order: the spatial axes in tensor_axes order (the card's x y z reversed
    # for the default zyx).
    if args.dimensions == 3:
        shape = [1, len(channels)] + [args.patch["xyz".index(a)] for a in args.tensor_axes]
    else:
        shape = [1, len(channels)] + list(reversed(args.patch))
    example = torch.randn(*shape, generator=torch.Generator().manual_seed(args.seed + 1))
    with torch.no_grad():
        traced = torch.jit.trace(wrapper, example)
        out = traced(example)
    logits = out[0] if isinstance(out, tuple) else out
    if logits.shape[1] != classes or list(logits.shape[2:]) != shape[2:]:
        raise SystemExit(f"export_torchscript.py: the network returns {list(logits.shape)} for an input "
                         f"{shape}; Sagitta needs {classes} classes at the input's size")

    os.makedirs(args.output, exist_ok=True)
    weights = os.path.join(args.output, "model.pt")
    traced.save(weights + ".partial")
    os.replace(weights + ".partial", weights)
    card = {
        "name": args.name, "version": args.version, "description": args.description,
        "format": "torchscript", "weights": "model.pt", "sha256": sha256(weights),
        "dimensions": args.dimensions, "channels": channels,
        "spacing": args.spacing, "patch_size": args.patch,
        "labels": [{"value": 0, "name": "background", "color": PALETTE[0]}] +
                  [{"value": i + 1, "name": n, "color": PALETTE[(i + 1) % len(PALETTE)]} for i, n in enumerate(args.labels)],
        "gradcam_layer": args.layer, "returns_activation": bool(args.layer),
        "orientation": orientation, "reorient": reorient, "tensor_axes": args.tensor_axes,
        "mirror_axes": args.mirror_axes,
        "provenance": {"exporter": "scripts/export_torchscript.py", "torch": torch.__version__,
                       "source": "builtin-unet" if args.builtin_unet else os.path.basename(args.model_file)},
    }
    card_path = os.path.join(args.output, "model.json")
    with open(card_path + ".partial", "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    os.replace(card_path + ".partial", card_path)

    if args.reference:
        os.makedirs(args.reference, exist_ok=True)
        example.numpy().astype("<f4").tofile(os.path.join(args.reference, "input.f32"))
        logits.numpy().astype("<f4").tofile(os.path.join(args.reference, "logits.f32"))
        with open(os.path.join(args.reference, "shapes.json"), "w") as f:
            json.dump({"input": list(example.shape), "logits": list(logits.shape)}, f)
    print(f"wrote {weights} and {card_path}")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""End-to-end reference for `sagitta segment --model <nnU-Net v2 results folder>`.

Builds small nnU-Net v2 results folders (plans.json, dataset.json, fold_N/checkpoint_final.pth with
random weights in the networks of nnunet_fixture.py) and a phantom image, then predicts it the way
nnU-Net v2's nnUNetPredictor does, composed from the step functions of nnunet_reference.py:

  DefaultPreprocessor.run_case_npy                    nnunet_reference (transpose, crop, normalise, resample)
  predict_sliding_window_return_logits               here: pad_nd_image (zeros, centred), the slicers of
                                                      _internal_get_sliding_window_slicers, the network per
                                                      window, _internal_maybe_mirror_and_predict, float16
                                                      sums and weights, torch.div into float16
  predict_logits_from_preprocessed_data              here: float16 sum over folds, divided by their count
  convert_predicted_logits_to_segmentation_with_correct_shape
                                                      nnunet_reference (float16 resampling, softmax, argmax,
                                                      uncrop, transpose_backward)

usage: nnunet_predictor.py OUT
       nnunet_predictor.py --bench OUT THREADS   (a 3d_fullres-like network and a 48 x 160 x 160 CT-like
                                                   phantom; writes OUT/image.nrrd, predicts fold 0 without
                                                   mirroring, prints the seconds as JSON)
Writes OUT/image.f32 + OUT/case.json (the phantom, ITK buffer order and geometry) and, per variant,
OUT/<variant>/{labels.f32, probabilities_<h>.f32, result.json}; the results folders are under
OUT/nnUNet_results/.
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import nnunet_fixture as fixture  # noqa: E402
import nnunet_reference as ref  # noqa: E402

DATASET = "Dataset321_Phantom"
LABELS = {"background": 0, "liver": 1, "lesion": 2}

CONFIGS = {
    # transpose_forward [0, 2, 1]: the network's arrays are z x y of the stored axes
    "3d_fullres": {"patch_size": [8, 24, 16], "spacing": [2.0, 1.2, 1.0],
                   "arch": fixture.architecture(False, 3, 3, [4, 8, 16], [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                                                [[1, 1, 1], [1, 2, 2], [2, 2, 2]], [2, 2, 2], [2, 2])},
    "2d": {"patch_size": [24, 16], "spacing": [1.2, 1.0],
           "arch": fixture.architecture(True, 2, 3, [4, 8, 16], [[3, 3], [3, 3], [3, 3]],
                                        [[1, 1], [2, 2], [2, 2]], [1, 2, 2], [1, 1])},
}

# variant: (configuration, folds, mirror)
VARIANTS = {
    "3d_fold0": ("3d_fullres", ["0"], False),
    "3d_fold0_mirror": ("3d_fullres", ["0"], True),
    "3d_folds01_mirror": ("3d_fullres", ["0", "1"], True),
    "2d_fold0_mirror": ("2d", ["0"], True),
}


def plans():
    configurations = {}
    for name, c in CONFIGS.items():
        configurations[name] = {
            "data_identifier": "nnUNetPlans_" + name, "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": c["patch_size"], "median_image_size_in_voxels": [20, 40, 36],
            "spacing": c["spacing"], "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
            "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                   "force_separate_z": None},
            "architecture": c["arch"], "batch_dice": False}
    return {"dataset_name": DATASET, "plans_name": "nnUNetPlans", "original_median_spacing_after_transp": [2.5, 0.8, 0.9],
            "original_median_shape_after_transp": [20, 36, 40], "image_reader_writer": "SimpleITKIO",
            "transpose_forward": [0, 2, 1], "transpose_backward": [0, 2, 1], "configurations": configurations,
            "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
            "foreground_intensity_properties_per_channel": {
                "0": {"max": 260.0, "mean": 120.0, "median": 118.0, "min": -20.0, "percentile_00_5": 10.0,
                      "percentile_99_5": 230.0, "std": 45.0}}}


def phantom():
    # ITK buffer z y x; spacing x y z (0.9, 0.8, 2.5): anisotropic, so the data is resampled with the
    # separate-z rule; zeros outside an ellipse so that the non-zero crop matters
    rng = np.random.default_rng(7)
    z, y, x = np.mgrid[0:20, 0:40, 0:36].astype(np.float32)
    body = ((y - 21) / 16) ** 2 + ((x - 17) / 14) ** 2 < 1
    organ = ((y - 18) / 7) ** 2 + ((x - 12) / 6) ** 2 + ((z - 9) / 6) ** 2 < 1
    lesion = ((y - 25) / 3) ** 2 + ((x - 22) / 3) ** 2 + ((z - 12) / 3) ** 2 < 1
    image = np.where(body, 40.0, 0.0) + 110.0 * organ + 80.0 * lesion + rng.normal(0, 8, body.shape) * body
    return image.astype(np.float32)


def sliding_window_logits(net, data, patch, mirror_axes, use_mirroring):
    """predict_sliding_window_return_logits on the CPU (no autocast): half sums and weights."""
    data = torch.from_numpy(data)
    two_d = len(patch) == 2
    # pad_nd_image(..., 'constant', value 0, return_slicer True): pad to at least the patch, centred
    spatial = list(data.shape[1:])
    target = ([spatial[0]] if two_d else []) + list(patch)
    new = [max(s, t) for s, t in zip(spatial, target)]
    before = [(n - s) // 2 for n, s in zip(new, spatial)]
    padded = torch.zeros((data.shape[0], *new), dtype=data.dtype)
    padded[(slice(None), *[slice(b, b + s) for b, s in zip(before, spatial)])] = data
    # _internal_get_sliding_window_slicers
    slicers = []
    if two_d:
        steps = ref.compute_steps_for_sliding_window(new[1:], patch, 0.5)
        for d in range(new[0]):
            for sx in steps[0]:
                for sy in steps[1]:
                    slicers.append((slice(None), d, slice(sx, sx + patch[0]), slice(sy, sy + patch[1])))
    else:
        steps = ref.compute_steps_for_sliding_window(new, patch, 0.5)
        for sx in steps[0]:
            for sy in steps[1]:
                for sz in steps[2]:
                    slicers.append((slice(None), slice(sx, sx + patch[0]), slice(sy, sy + patch[1]),
                                    slice(sz, sz + patch[2])))
    heads = net.decoder.seg_layers[-1].out_channels
    logits = torch.zeros((heads, *new), dtype=torch.half)
    n_predictions = torch.zeros(new, dtype=torch.half)
    gaussian = torch.from_numpy(ref.compute_gaussian(tuple(patch))).half()
    with torch.no_grad():
        for sl in slicers:
            x = torch.clone(padded[sl][None], memory_format=torch.contiguous_format)
            # _internal_maybe_mirror_and_predict
            prediction = net(x)
            if use_mirroring and mirror_axes is not None:
                axes = [m + 2 for m in mirror_axes]
                combinations = [c for i in range(len(axes)) for c in __import__('itertools').combinations(axes, i + 1)]
                for a in combinations:
                    prediction += torch.flip(net(torch.flip(x, a)), a)
                prediction /= (len(combinations) + 1)
            prediction = prediction[0]
            prediction *= gaussian
            logits[sl] += prediction
            n_predictions[sl[1:]] += gaussian
        torch.div(logits, n_predictions, out=logits)
    return logits[(slice(None), *[slice(b, b + s) for b, s in zip(before, spatial)])]


def build(out):
    torch.set_num_threads(1)
    image = phantom()
    image.astype("<f4").tofile(os.path.join(out, "image.f32"))
    case = {"shape": list(image.shape), "spacing": [0.9, 0.8, 2.5], "origin": [-12.0, 30.5, 100.0],
            "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1], "channels": [os.path.join(out, "image.f32")]}
    json.dump(case, open(os.path.join(out, "case.json"), "w"))
    nets = {}
    for name, c in CONFIGS.items():
        folder = os.path.join(out, "nnUNet_results", DATASET, "nnUNetTrainer__nnUNetPlans__" + name)
        os.makedirs(folder, exist_ok=True)
        json.dump(plans(), open(os.path.join(folder, "plans.json"), "w"), indent=1)
        json.dump({"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 3, "file_ending": ".nii.gz"},
                  open(os.path.join(folder, "dataset.json"), "w"), indent=1)
        dims = len(c["patch_size"])
        fixture.CASES["e2e"] = (c["arch"], 1, len(LABELS), [1, 1] + [max(8, p) for p in c["patch_size"]])
        for fold in ("0", "1"):
            gen = torch.Generator().manual_seed(100 + int(fold) + 10 * dims)
            torch.manual_seed(100 + int(fold) + 10 * dims)
            net = fixture.Net(c["arch"], 1, len(LABELS))
            fixture.randomise(net, gen)
            os.makedirs(os.path.join(folder, "fold_" + fold), exist_ok=True)
            mirror = (0, 1, 2) if dims == 3 else (0, 1)
            torch.save(fixture.checkpoint(net, c["arch"], "e2e", mirror),
                       os.path.join(folder, "fold_" + fold, "checkpoint_final.pth"))
            net.eval()
            nets[(name, fold)] = (net, mirror)
        nets[name] = folder
    legacy(out)
    return case, nets


def legacy(out):
    # The 3d_fullres folder again with plans as nnU-Net < 2.3 wrote them (UNet_class_name and
    # separate size keys instead of 'architecture'), the same weights: must predict the same.
    import shutil
    src = os.path.join(out, "nnUNet_results", DATASET, "nnUNetTrainer__nnUNetPlans__3d_fullres")
    dst = os.path.join(out, "nnUNet_results", DATASET, "nnUNetTrainer__nnUNetPlansLegacy__3d_fullres")
    shutil.copytree(src, dst)
    p = json.load(open(os.path.join(dst, "plans.json")))
    p["plans_name"] = "nnUNetPlansLegacy"
    c = p["configurations"]["3d_fullres"]
    kw = c.pop("architecture")["arch_kwargs"]
    c.update({"UNet_class_name": "PlainConvUNet", "UNet_base_num_features": kw["features_per_stage"][0],
              "unet_max_num_features": kw["features_per_stage"][-1], "n_conv_per_stage_encoder": kw["n_conv_per_stage"],
              "n_conv_per_stage_decoder": kw["n_conv_per_stage_decoder"], "conv_kernel_sizes": kw["kernel_sizes"],
              "pool_op_kernel_sizes": kw["strides"], "num_pool_per_axis": [1, 2, 2]})
    p["configurations"] = {"3d_fullres": c}
    json.dump(p, open(os.path.join(dst, "plans.json"), "w"), indent=1)


def predict(case, folder, networks, mirror, out):
    os.makedirs(out, exist_ok=True)
    p = json.load(open(os.path.join(folder, "plans.json")))
    dataset = json.load(open(os.path.join(folder, "dataset.json")))
    c = ref.configuration(p, os.path.basename(folder).split("__")[-1])
    data, properties, _ = ref.read_images(case, p["image_reader_writer"])
    # DefaultPreprocessor.run_case_npy
    tf, tb = p["transpose_forward"], p["transpose_backward"]
    data = data.transpose([0, *[i + 1 for i in tf]])
    original_spacing = [properties["spacing"][i] for i in tf]
    shape_before_cropping = data.shape[1:]
    data, seg, bbox = ref.crop_to_nonzero(data)
    shape_after_cropping = data.shape[1:]
    target_spacing = list(c["spacing"])
    if len(target_spacing) < 3:
        target_spacing = [original_spacing[0]] + target_spacing
    new_shape = ref.compute_new_shape(data.shape[1:], original_spacing, target_spacing)
    intensity = p["foreground_intensity_properties_per_channel"]
    for ch in range(data.shape[0]):
        data[ch] = ref.normalise(data[ch], seg[0], c["normalization_schemes"][ch], c["use_mask_for_norm"][ch],
                                 intensity.get(str(ch), {}))
    data = ref.resample_data_or_seg_to_shape(data, new_shape, original_spacing, target_spacing,
                                             **ref.kwargs_of(c, "data")).astype(np.float32)
    # predict_logits_from_preprocessed_data: folds summed in float16, then divided
    prediction = None
    for net, mirror_axes in networks:
        logits = sliding_window_logits(net, data, c["patch_size"], mirror_axes, mirror)
        prediction = logits if prediction is None else prediction + logits
    if len(networks) > 1:
        prediction /= len(networks)
    logits = prediction.numpy()  # float16
    # convert_predicted_logits_to_segmentation_with_correct_shape
    current_spacing = c["spacing"] if len(c["spacing"]) == 3 else [original_spacing[0], *c["spacing"]]
    resampled = ref.resample_data_or_seg_to_shape(logits, shape_after_cropping, current_spacing, original_spacing,
                                                  **ref.kwargs_of(c, "probabilities"))
    probabilities = torch.softmax(torch.from_numpy(np.asarray(resampled)).float(), 0).numpy()
    segmentation = probabilities.argmax(0)
    labels = np.array(ref.all_labels(dataset["labels"]))[segmentation]
    full = np.zeros(shape_before_cropping, dtype=np.uint8)
    full[tuple(slice(b[0], b[1]) for b in bbox)] = labels
    full = full.transpose(tb)
    full.astype(np.float32).tofile(os.path.join(out, "labels.f32"))
    for h in range(probabilities.shape[0]):
        whole = np.zeros(shape_before_cropping, dtype=np.float32)
        whole[tuple(slice(b[0], b[1]) for b in bbox)] = probabilities[h]
        np.ascontiguousarray(whole.transpose(tb)).tofile(os.path.join(out, "probabilities_%d.f32" % h))
    json.dump({"bbox": bbox, "new_shape": [int(i) for i in new_shape],
               "voxels": {str(v): int((full == v).sum()) for v in ref.all_labels(dataset["labels"])}},
              open(os.path.join(out, "result.json"), "w"))


def write_nrrd(path, image, spacing, origin):
    with open(path, "wb") as f:
        f.write(("NRRD0004\ntype: float\ndimension: 3\nspace: left-posterior-superior\n"
                 "sizes: %d %d %d\nspace directions: (%r,0,0) (0,%r,0) (0,0,%r)\nspace origin: (%r,%r,%r)\n"
                 "endian: little\nencoding: raw\n\n" % (image.shape[2], image.shape[1], image.shape[0], *spacing,
                                                        *origin)).encode())
        f.write(image.astype("<f4").tobytes())


def bench(out, threads):
    import time
    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    rng = np.random.default_rng(3)
    z, y, x = np.mgrid[0:48, 0:160, 0:160].astype(np.float32)
    body = ((y - 80) / 70) ** 2 + ((x - 80) / 60) ** 2 < 1
    organ = ((y - 70) / 30) ** 2 + ((x - 60) / 25) ** 2 + ((z - 24) / 15) ** 2 < 1
    image = (np.where(body, 40.0, -1000.0) + 110.0 * organ + rng.normal(0, 10, body.shape) * body).astype(np.float32)
    spacing, origin = [0.8, 0.8, 2.5], [-64.0, -60.0, 10.0]
    write_nrrd(os.path.join(out, "image.nrrd"), image, spacing, origin)
    image.astype("<f4").tofile(os.path.join(out, "image.f32"))
    case = {"shape": list(image.shape), "spacing": spacing, "origin": origin,
            "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1], "channels": [os.path.join(out, "image.f32")]}
    arch = fixture.architecture(False, 3, 5, [16, 32, 64, 128, 128],
                                [[1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
                                [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2]], [2, 2, 2, 2, 2], [2, 2, 2, 2])
    CONFIGS["3d_fullres"] = {"patch_size": [32, 96, 96], "spacing": [2.5, 1.0, 1.0], "arch": arch}
    p = plans()
    p["configurations"] = {"3d_fullres": p["configurations"]["3d_fullres"]}
    p["transpose_forward"] = p["transpose_backward"] = [0, 1, 2]
    folder = os.path.join(out, "nnUNet_results", DATASET, "nnUNetTrainer__nnUNetPlans__3d_fullres")
    os.makedirs(os.path.join(folder, "fold_0"), exist_ok=True)
    json.dump(p, open(os.path.join(folder, "plans.json"), "w"), indent=1)
    json.dump({"channel_names": {"0": "CT"}, "labels": LABELS, "numTraining": 3, "file_ending": ".nii.gz"},
              open(os.path.join(folder, "dataset.json"), "w"), indent=1)
    gen = torch.Generator().manual_seed(5)
    net = fixture.Net(arch, 1, len(LABELS))
    fixture.randomise(net, gen)
    fixture.CASES["bench"] = (arch, 1, len(LABELS), [1, 1, 16, 32, 32])
    torch.save(fixture.checkpoint(net, arch, "bench", (0, 1, 2)), os.path.join(folder, "fold_0", "checkpoint_final.pth"))
    setup = time.perf_counter() - t0
    # The reference run as a user would time it: weights read from the checkpoint, then predicted.
    t0 = time.perf_counter()
    net = fixture.Net(arch, 1, len(LABELS))
    net.load_state_dict(torch.load(os.path.join(folder, "fold_0", "checkpoint_final.pth"), map_location="cpu",
                                   weights_only=False)["network_weights"])
    net.eval()
    predict(case, folder, [(net, (0, 1, 2))], False, os.path.join(out, "python"))
    print(json.dumps({"setup_s": setup, "predict_s": time.perf_counter() - t0, "folder": folder}))


def main():
    if sys.argv[1] == "--bench":
        os.makedirs(sys.argv[2], exist_ok=True)
        bench(sys.argv[2], int(sys.argv[3]))
        return
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    case, nets = build(out)
    for variant, (configuration, folds, mirror) in VARIANTS.items():
        predict(case, nets[configuration], [nets[(configuration, f)] for f in folds], mirror,
                os.path.join(out, variant))


if __name__ == "__main__":
    main()

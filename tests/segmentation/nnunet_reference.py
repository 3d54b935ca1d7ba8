#!/usr/bin/python3
"""Reference for Sagitta's nnU-Net data path (segmentation/inference/nnunet_*.cpp).

Performs each step of nnU-Net v2's predictor around the network with the library calls nnU-Net
makes (numpy, scipy.ndimage, skimage.transform.resize, nibabel.orientations, torch for the
float16 Gaussian), written for Sagitta's tests; every step names the upstream function it mirrors.
nnU-Net itself is not needed.

usage: nnunet_reference.py case.json OUT_FOLDER
case.json: {"folder": results folder, "channels": [raw float32 files], "shape": [z, y, x] of the ITK
buffer, "spacing": ITK spacing x y z, "direction": ITK (LPS) direction, row-major 3x3, "origin": ...,
"seed": int, "steps": [[size, tile], ...], "tiles": [[...], ...]}
Writes data_<c>.f32, logits_<h>.f32, labels.f32, probabilities_<h>.f32 and result.json.
"""
import json
import os
import sys

import numpy as np
from scipy.ndimage import binary_fill_holes, gaussian_filter, map_coordinates
from skimage.transform import resize

ANISO_THRESHOLD = 3  # nnunetv2.configuration


# ---- plans (PlansManager / ConfigurationManager / LabelManager) ------------------------------------

def configuration(plans, name):
    # PlansManager._internal_resolve_configuration_inheritance
    c = dict(plans['configurations'][name])
    if 'inherits_from' in c:
        base = configuration(plans, c['inherits_from'])
        base.update(c)
        c = base
    return c


def all_labels(labels):
    # LabelManager._get_all_labels
    out = []
    for k, r in labels.items():
        if k == 'ignore':
            continue
        out += [int(i) for i in r] if isinstance(r, (list, tuple)) else [int(r)]
    return sorted(set(out))


def has_regions(labels):
    return any(isinstance(i, (tuple, list)) and len(i) > 1 for i in labels.values())


def foreground_regions(labels):
    # LabelManager._get_regions + filter_background
    regions = []
    for k, r in labels.items():
        if k == 'ignore':
            continue
        if (np.isscalar(r) and r == 0) or (isinstance(r, list) and len(np.unique(r)) == 1 and np.unique(r)[0] == 0):
            continue
        regions.append(tuple(r) if isinstance(r, list) else r)
    return regions


# ---- readers (imageio/simpleitk_reader_writer.py, nibabel_reader_writer.py) -----------------------

def ras_affine(case):
    # the NIfTI affine nibabel would see for this ITK geometry (LPS -> RAS)
    d = np.array(case['direction'], dtype=float).reshape(3, 3)
    flip = np.diag([-1.0, -1.0, 1.0])
    a = np.eye(4)
    a[:3, :3] = flip @ d @ np.diag(case['spacing'])
    a[:3, 3] = flip @ np.array(case['origin'], dtype=float)
    return a


def read_images(case, reader):
    arrays = [np.fromfile(f, dtype=np.float32).reshape(case['shape']) for f in case['channels']]
    if reader in ('SimpleITKIO', 'NibabelIO'):
        # SimpleITKIO.read_images: GetArrayFromImage (z y x of the stored axes), spacing reversed;
        # NibabelIO: get_fdata().transpose((2, 1, 0)), zooms reversed: the same array
        data = np.vstack([a[None] for a in arrays]).astype(np.float32)
        return data, {'spacing': list(case['spacing'])[::-1]}, None
    # NibabelIOWithReorient.read_images: as_reoriented(io_orientation(affine)), then transposed
    import nibabel
    from nibabel.orientations import io_orientation
    affine = ras_affine(case)
    images, spacing, reoriented_affine = [], None, None
    for a in arrays:
        img = nibabel.Nifti1Image(a.transpose((2, 1, 0)), affine)
        r = img.as_reoriented(io_orientation(affine))
        spacing = [float(i) for i in r.header.get_zooms()[::-1]]
        reoriented_affine = r.affine
        images.append(np.asarray(r.dataobj).transpose((2, 1, 0))[None])
    return np.vstack(images).astype(np.float32), {'spacing': spacing}, (affine, reoriented_affine)


def write_back(seg, reader, affines):
    # SimpleITKIO.write_seg keeps the array; NibabelIOWithReorient.write_seg reorients back
    if reader != 'NibabelIOWithReorient':
        return seg
    import nibabel
    from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform
    original_affine, reoriented_affine = affines
    img = nibabel.Nifti1Image(seg.transpose((2, 1, 0)), reoriented_affine)
    back = img.as_reoriented(ornt_transform(axcodes2ornt('RAS'), io_orientation(original_affine)))
    assert np.allclose(back.affine, original_affine)
    return np.asarray(back.dataobj).transpose((2, 1, 0))


# ---- cropping (preprocessing/cropping/cropping.py, acvl_utils bounding boxes) ----------------------

def crop_to_nonzero(data):
    # create_nonzero_mask: non-zero in any channel, binary_fill_holes
    mask = data[0] != 0
    for c in range(1, data.shape[0]):
        mask |= data[c] != 0
    mask = binary_fill_holes(mask)
    # acvl_utils get_bbox_from_mask (the whole array when empty)
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.where(np.any(mask, axis=other))[0]
        box.append([int(hit[0]), int(hit[-1]) + 1] if len(hit) else [0, mask.shape[axis]])
    sl = tuple(slice(b[0], b[1]) for b in box)
    seg = np.where(mask[sl][None], np.int8(0), np.int8(-1))
    return data[(slice(None),) + sl], seg, box


# ---- normalisation (preprocessing/normalization/default_normalization_schemes.py) -----------------

def normalise(image, seg, scheme, use_mask, props):
    image = image.astype(np.float32, copy=False)
    if scheme == 'CTNormalization':
        np.clip(image, props['percentile_00_5'], props['percentile_99_5'], out=image)
        image -= props['mean']
        image /= max(props['std'], 1e-8)
    elif scheme == 'ZScoreNormalization':
        if use_mask:
            mask = seg >= 0
            mean = image[mask].mean()
            std = image[mask].std()
            image[mask] = (image[mask] - mean) / (max(std, 1e-8))
        else:
            mean = image.mean()
            std = image.std()
            image -= mean
            image /= (max(std, 1e-8))
    elif scheme == 'RescaleTo01Normalization':
        image -= image.min()
        image /= np.clip(image.max(), a_min=1e-8, a_max=None)
    elif scheme == 'RGBTo01Normalization':
        image /= 255.
    return image


# ---- resampling (preprocessing/resampling/default_resampling.py) ----------------------------------

def compute_new_shape(old_shape, old_spacing, new_spacing):
    return np.array([int(round(i / j * k)) for i, j, k in zip(old_spacing, new_spacing, old_shape)])


def lowres_axis(spacing):
    return np.where(max(spacing) / np.array(spacing) == 1)[0]


def separate_z(force, current, new):
    # determine_do_sep_z_and_axis
    if force is not None:
        axis = lowres_axis(current) if force else None
        do = bool(force)
    elif np.max(current) / np.min(current) > ANISO_THRESHOLD:
        do, axis = True, lowres_axis(current)
    elif np.max(new) / np.min(new) > ANISO_THRESHOLD:
        do, axis = True, lowres_axis(new)
    else:
        do, axis = False, None
    if axis is not None and len(axis) != 1:
        do = False
    return do, axis


def resample_data_or_seg_to_shape(data, new_shape, current, new, order=3, order_z=0, force_separate_z=None,
                                  is_seg=False):
    do, axis = separate_z(force_separate_z, current, new)
    shape = np.array(data[0].shape)
    new_shape = np.array(new_shape)
    if not np.any(shape != new_shape):
        return data
    out = np.zeros((data.shape[0], *new_shape), dtype=data.dtype)
    data = data.astype(float, copy=False)
    kwargs = {'mode': 'edge', 'anti_aliasing': False}
    for c in range(data.shape[0]):
        if do:
            axis0 = int(axis[0])
            shape_2d = np.delete(new_shape, axis0)
            here = np.zeros([shape[axis0] if a == axis0 else new_shape[a] for a in range(3)])
            for s in range(shape[axis0]):
                sl = [slice(None)] * 3
                sl[axis0] = s
                here[tuple(sl)] = resize(data[c][tuple(sl)], shape_2d, order, **kwargs)
            if shape[axis0] != new_shape[axis0]:
                rows, cols, dim = new_shape
                orig_rows, orig_cols, orig_dim = here.shape
                map_rows, map_cols, map_dims = np.mgrid[:rows, :cols, :dim]
                map_rows = float(orig_rows) / rows * (map_rows + 0.5) - 0.5
                map_cols = float(orig_cols) / cols * (map_cols + 0.5) - 0.5
                map_dims = float(orig_dim) / dim * (map_dims + 0.5) - 0.5
                out[c] = map_coordinates(here, np.array([map_rows, map_cols, map_dims]), order=order_z, mode='nearest')
            else:
                out[c] = here
        else:
            out[c] = resize(data[c], new_shape, order, **kwargs)
    return out


def kwargs_of(c, which):
    kw = dict(c['resampling_fn_%s_kwargs' % which])
    kw.pop('is_seg', None)
    return kw


# ---- sliding window (inference/sliding_window_prediction.py) --------------------------------------

def compute_steps_for_sliding_window(image_size, tile_size, tile_step_size):
    target = [i * tile_step_size for i in tile_size]
    num_steps = [int(np.ceil((i - k) / j)) + 1 for i, j, k in zip(image_size, target, tile_size)]
    steps = []
    for dim in range(len(tile_size)):
        max_step_value = image_size[dim] - tile_size[dim]
        actual = max_step_value / (num_steps[dim] - 1) if num_steps[dim] > 1 else 99999999999
        steps.append([int(np.round(actual * i)) for i in range(num_steps[dim])])
    return steps


def compute_gaussian(tile_size, sigma_scale=1. / 8, value_scaling_factor=10):
    tmp = np.zeros(tile_size)
    tmp[tuple(i // 2 for i in tile_size)] = 1
    g = gaussian_filter(tmp, [i * sigma_scale for i in tile_size], 0, mode='constant', cval=0)
    try:
        import torch
        t = torch.from_numpy(g)
        t = (t / torch.max(t) * value_scaling_factor).type(torch.float16)
        t[t == 0] = torch.min(t[t != 0])
        return t.float().numpy()
    except ImportError:  # numpy's float16 (torch converts through float32 first)
        h = (g / g.max() * value_scaling_factor).astype(np.float32).astype(np.float16)
        h[h == 0] = h[h != 0].min()
        return h.astype(np.float32)


# ---- the case ------------------------------------------------------------------------------------

def main():
    case = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    folder = case['folder']
    plans = json.load(open(os.path.join(folder, 'plans.json')))
    dataset = json.load(open(os.path.join(folder, 'dataset.json')))
    c = configuration(plans, os.path.basename(folder.rstrip('/')).split('__')[-1])
    reader = plans.get('image_reader_writer', dataset.get('overwrite_image_reader_writer', 'SimpleITKIO'))
    data, properties, affines = read_images(case, reader)

    # DefaultPreprocessor.run_case_npy
    tf, tb = plans['transpose_forward'], plans['transpose_backward']
    data = data.transpose([0, *[i + 1 for i in tf]])
    original_spacing = [properties['spacing'][i] for i in tf]
    shape_before_cropping = data.shape[1:]
    data, seg, bbox = crop_to_nonzero(data)
    shape_after_cropping = data.shape[1:]
    target_spacing = list(c['spacing'])
    if len(target_spacing) < len(data.shape[1:]):
        target_spacing = [original_spacing[0]] + target_spacing
    new_shape = compute_new_shape(data.shape[1:], original_spacing, target_spacing)
    intensity = plans['foreground_intensity_properties_per_channel']
    for ch in range(data.shape[0]):
        data[ch] = normalise(data[ch], seg[0], c['normalization_schemes'][ch], c['use_mask_for_norm'][ch],
                             intensity.get(str(ch), {}))
    data = resample_data_or_seg_to_shape(data, new_shape, original_spacing, target_spacing,
                                         **kwargs_of(c, 'data'))
    for ch in range(data.shape[0]):
        np.ascontiguousarray(data[ch], dtype=np.float32).tofile(os.path.join(out, 'data_%d.f32' % ch))

    # synthetic logits on the preprocessed grid (what the network would return)
    labels = dataset['labels']
    regions = has_regions(labels)
    heads = len(foreground_regions(labels)) if regions else len(all_labels(labels))
    rng = np.random.default_rng(case.get('seed', 0))
    logits = gaussian_filter(rng.standard_normal((heads, *new_shape)), (0, 1.5, 1.5, 1.5)) * 8
    # predict_sliding_window_return_logits accumulates and returns float16 logits
    logits = logits.astype(np.float16)
    for h in range(heads):
        logits[h].astype(np.float32).tofile(os.path.join(out, 'logits_%d.f32' % h))

    # export_prediction.convert_predicted_logits_to_segmentation_with_correct_shape
    current_spacing = c['spacing'] if len(c['spacing']) == 3 else [original_spacing[0], *c['spacing']]
    resampled = resample_data_or_seg_to_shape(logits, shape_after_cropping, current_spacing, original_spacing,
                                              **kwargs_of(c, 'probabilities'))
    resampled = resampled.astype(np.float32)
    if regions:  # torch.sigmoid; LabelManager.convert_probabilities_to_segmentation with regions
        prob = (1 / (1 + np.exp(-resampled))).astype(np.float32)
        segm = np.zeros(prob.shape[1:], dtype=np.uint8)
        for i, cl in enumerate(dataset['regions_class_order']):
            segm[prob[i] > 0.5] = cl
    else:  # softmax_helper_dim0, argmax
        e = np.exp(resampled - resampled.max(0, keepdims=True))
        prob = (e / e.sum(0, keepdims=True)).astype(np.float32)
        segm = np.array(all_labels(labels))[prob.argmax(0)]
    full = np.zeros(shape_before_cropping, dtype=np.uint8)
    full[tuple(slice(b[0], b[1]) for b in bbox)] = segm  # insert_crop_into_image
    full = full.transpose(tb)
    full = write_back(full, reader, affines)
    full.astype(np.float32).tofile(os.path.join(out, 'labels.f32'))
    for h in range(heads):
        np.ascontiguousarray(prob[h], dtype=np.float32).tofile(os.path.join(out, 'probabilities_%d.f32' % h))

    result = {
        'shape_before_cropping': [int(i) for i in shape_before_cropping],
        'bbox': bbox,
        'shape_after_cropping': [int(i) for i in shape_after_cropping],
        'new_shape': [int(i) for i in new_shape],
        'spacing': [float(i) for i in properties['spacing']],
        'target_spacing': [float(i) for i in target_spacing],
        'heads': heads,
        'separate_z_data': [bool(separate_z(kwargs_of(c, 'data').get('force_separate_z'), original_spacing,
                                            target_spacing)[0])],
        'steps': [compute_steps_for_sliding_window([s], [t], 0.5)[0] for s, t in case.get('steps', [])],
    }
    for i, tile in enumerate(case.get('tiles', [])):
        compute_gaussian(tuple(tile)).astype(np.float32).tofile(os.path.join(out, 'gaussian_%d.f32' % i))
    json.dump(result, open(os.path.join(out, 'result.json'), 'w'))


if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""MONAI's Orientation + Spacing output grid, restated for Sagitta's tests from MONAI's documented
behaviour with numpy and nibabel (MONAI itself is not needed): Orientation(axcodes) reorients the
array by nibabel's io_orientation / inv_ornt_aff; Spacing(pixdim) makes the new affine with
zoom_affine (rotation kept, diagonal False) and places it with compute_shape_offset: the source
voxel-centre corners in the new frame, round(ptp + 1) voxels, and, the orientation being the same,
the source's first voxel as the origin.

usage: monai_spacing_reference.py CASE.json -> JSON {"shape": [i, j, k], "origin_lps": [x, y, z]}
CASE.json: {"size": ITK size x y z, "spacing": ITK spacing, "origin": ITK origin (LPS),
            "direction": ITK direction row-major, "axcodes": "RAS", "pixdim": [..3..]}
"""
import json
import sys

import numpy as np
from nibabel.orientations import axcodes2ornt, inv_ornt_aff, io_orientation, ornt_transform


def main():
    c = json.load(open(sys.argv[1]))
    lps_to_ras = np.diag([-1.0, -1.0, 1.0])
    d = np.array(c["direction"], dtype=float).reshape(3, 3)
    affine = np.eye(4)  # the NIfTI (RAS) affine of the ITK geometry, array axes i j k = ITK x y z
    affine[:3, :3] = lps_to_ras @ d @ np.diag(c["spacing"])
    affine[:3, 3] = lps_to_ras @ np.array(c["origin"], dtype=float)
    shape = np.array(c["size"], dtype=float)
    # Orientation: the transform from the array's orientation to axcodes, applied to the affine
    ornt = ornt_transform(io_orientation(affine), axcodes2ornt(c["axcodes"]))
    affine = affine @ inv_ornt_aff(ornt, shape)
    shape = shape[np.argsort(ornt[:, 0])]  # the reoriented array's shape
    # zoom_affine(diagonal=False): rotation of the affine kept, zooms replaced by pixdim
    rzs = affine[:3, :3]
    zs = np.linalg.cholesky(rzs.T @ rzs).T
    rotation = rzs @ np.linalg.inv(zs)
    s = np.sign(np.diag(zs)) * np.abs(np.array(c["pixdim"], dtype=float))
    out = np.eye(4)
    out[:3, :3] = rotation @ np.diag(s)
    # compute_shape_offset
    corners = np.asarray(np.meshgrid(*[(0.0, n - 1.0) for n in shape], indexing="ij")).reshape(3, -1)
    corners = np.concatenate((corners, np.ones_like(corners[:1])))
    corners_out = np.linalg.inv(out) @ (affine @ corners)
    corners_out = corners_out[:-1] / corners_out[-1]
    out_shape = np.round(np.ptp(corners_out, axis=1) + 1.0)
    offset = affine @ np.array([0, 0, 0, 1.0])
    origin_ras = offset[:3] / offset[3]
    print(json.dumps({"shape": [int(v) for v in out_shape], "origin_lps": list(lps_to_ras @ origin_ras)}))


if __name__ == "__main__":
    main()

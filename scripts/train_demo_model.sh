#!/usr/bin/env bash
# Reproduces the demo model in testdata/models/demo: a small 2D U-Net (axial slices) trained with `sagitta train`
# on TotalSegmentator's real example CT (122x101x30 at 3 mm, ../shared/data/ct/totalsegmentator),
# then scored on real CT it never saw (the example DICOM series, 512x512x20, with its label map).
#
# Labels (TotalSegmentator v2 "total" class ids; the data ships no class map, see the card's
# provenance and the demo README for how they were identified): liver=5, spleen=1,
# kidneys=2+3 (right and left merged: one class, no laterality to learn from one scan), stomach=6.
#
# 2D, not 3D: a 3D U-Net's backward pass on this 2-core CPU (shared) runs ~10 GFLOP/s, so a 3D
# model of useful patch size would need hours; 2D slices of the whole abdomen train in minutes.
# No flips: liver and spleen sit on opposite sides, and the model may use that. Rotation, scale
# and intensity augmentation stay on. One thread: on the shared 2-core machines, two LibTorch (OpenMP) threads competing with other
# processes ran 4x slower than one.
#
# Usage: scripts/train_demo_model.sh [output folder]   (SAGITTA_BIN, SAGITTA_EXTERNAL_DATA override)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=${SAGITTA_EXTERNAL_DATA:-$here/../shared/data}/ct/totalsegmentator
bin=${SAGITTA_BIN:-$here/build/modules/sagitta}
out=${1:-$here/testdata/models/demo}

"$bin" train \
  --image "$data/example_ct_sm.nii.gz" --label "$data/example_seg.nii.gz" \
  --labels liver=5,spleen=1,kidneys=2+3,stomach=6 \
  --name sagitta-demo-abdomen \
  --dimensions 2 --spacing 3,3 --patch 112,96 --base-channels 8 --depth 5 \
  --epochs 40 --iterations 30 --batch 6 --optimizer adam --lr 0.003 --foreground 0.5 \
  --flip none --rotation 15 --scale 0.15 --intensity 0.1 \
  --seed 1 --threads 1 \
  --test-image "$data/example_ct_dicom" --test-label "$data/example_seg_dicom.nii.gz" \
  -o "$out"

# The checkpoint (weights + Adam state) is for resuming only; the shipped model is model.pt + model.json.
rm -f "$out/checkpoint.pt"

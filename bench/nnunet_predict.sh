#!/usr/bin/env bash
# nnU-Net v2 results folder end to end: `sagitta segment --model <results folder>` against the Python
# reference of the same pipeline (tests/segmentation/nnunet_predictor.py: nnU-Net's preprocessing,
# sliding window with float16 sums, export, composed from numpy/scipy/skimage/python3-torch), same
# network and weights (a 5-stage PlainConvUNet, 16..128 features, patch 32x96x96), same CT-like
# phantom (160 x 160 x 48 at 0.8 x 0.8 x 2.5 mm), fold 0, no mirroring, same machine, same run.
#   bench/nnunet_predict.sh [build dir]   (env: THREADS=2 WORK=/tmp/sagitta-nnunet-predict)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
work="${WORK:-/tmp/sagitta-nnunet-predict}"
threads="${THREADS:-2}"
/usr/bin/python3 -c 'import torch, scipy, skimage' 2>/dev/null || { echo "skipped: needs python3-torch, python3-scipy, python3-skimage"; exit 0; }
rm -rf "$work" && mkdir -p "$work"
/usr/bin/time -f "%M" -o "$work/rss_py" /usr/bin/python3 "$root/tests/segmentation/nnunet_predictor.py" --bench "$work" "$threads" > "$work/py.json"
folder=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["folder"])' "$work/py.json")
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss_cpp" "$build/modules/sagitta" segment --no-progress "$work/image.nrrd" --model "$folder" \
  --threads "$threads" -o "$work/sagitta" > /dev/null
end=$(date +%s.%N)
/usr/bin/python3 - "$work" "$start" "$end" <<'PY'
import json, sys
w, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
py = json.load(open(w + "/py.json"))
rc = int(open(w + "/rss_cpp").read()) / 1024
rp = int(open(w + "/rss_py").read()) / 1024
print(f"sagitta segment (process, load, predict, write): {end - start:.1f} s, peak RSS {rc:.0f} MiB")
print(f"python reference (checkpoint load + predict, imports and fixture writing excluded): {py['predict_s']:.1f} s, "
      f"peak RSS of the whole process {rp:.0f} MiB")
print(f"time ratio sagitta/python {(end - start) / py['predict_s']:.2f}, RSS ratio {rc / rp:.2f}")
PY

#!/usr/bin/env bash
# Many-class inference on a big CT: `sagitta segment` with a 117-class model (TotalSegmentator's
# label count; a small network so that the forward passes are cheap) on synthetic 512x512xN CTs at
# 0.8 x 0.8 x 1.0 mm, model spacing 1.5 mm. Prints peak RSS, the whole command's time against the
# time inside the forward passes (from the run's report), and the logit tiles' peak; with a second
# build folder (PEER_BUILD, e.g. a build of an earlier commit) the same runs of that build, same
# inputs, same script.
#   bench/segmentation_streaming.sh [build dir]   (env: SLICES="400 1000" PATCH=64 BASE=8 DEPTH=3
#                                                  THREADS=2 PEER_BUILD= PEER_SLICES=400
#                                                  WORK=/tmp/sagitta-stream-bench)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
work="${WORK:-/tmp/sagitta-stream-bench}"
slices="${SLICES:-400 1000}" patch="${PATCH:-64}" base="${BASE:-8}" depth="${DEPTH:-3}" threads="${THREADS:-2}"
/usr/bin/python3 -c 'import torch, numpy' 2>/dev/null || { echo "skipped: /usr/bin/python3 has no torch/numpy (apt-get install python3-torch)"; exit 0; }
mkdir -p "$work"

model="$work/model_b${base}_d${depth}_p${patch}"
labels=$(seq -f "structure_%g" 1 116 | tr '\n' ' ')
if [ ! -f "$model/model.json" ]; then
  # shellcheck disable=SC2086
  /usr/bin/python3 "$root/scripts/export_torchscript.py" --builtin-unet --base "$base" --depth "$depth" \
    --patch "$patch" "$patch" "$patch" --spacing 1.5 1.5 1.5 --channel CT:ct:0:200:-1024:3071 \
    --labels $labels --name bench117 -o "$model" > /dev/null
fi

# A CT-like volume: air, an elliptic body of soft tissue with a spine-like cylinder, as int16 NRRD.
make_ct() {
  local n="$1" out="$work/ct_$1.nrrd"
  [ -f "$out" ] && return
  /usr/bin/python3 - "$n" "$out" <<'PY'
import sys, numpy as np
n, out = int(sys.argv[1]), sys.argv[2]
y, x = np.mgrid[0:512, 0:512].astype(np.float32)
body = ((x - 256) / 200) ** 2 + ((y - 256) / 150) ** 2 <= 1
spine = (x - 256) ** 2 + (y - 340) ** 2 <= 25 ** 2
plane = np.where(body, 40, -1000).astype(np.int16)
plane[spine] = 700
rng = np.random.default_rng(0)
with open(out, "wb") as f:
    f.write(("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
             f"sizes: 512 512 {n}\nspace directions: (0.8,0,0) (0,0.8,0) (0,0,1.0)\n"
             "kinds: domain domain domain\nendian: little\nencoding: raw\n"
             "space origin: (-204.8,-204.8,0)\n\n").encode())
    for z in range(n):
        (plane + rng.integers(-20, 20, plane.shape, dtype=np.int16) * body).astype("<i2").tofile(f)
PY
}

run() {  # build label slices
  local b="$1" name="$2" n="$3" out="$work/out_${2}_$3"
  rm -rf "$out"
  /usr/bin/time -f "%M %e" -o "$work/time_${name}_$n" "$b/modules/sagitta" segment "$work/ct_$n.nrrd" \
    --model "$model/model.json" --threads "$threads" -o "$out" > /dev/null
  /usr/bin/python3 - "$work/time_${name}_$n" "$out" "$name" "$n" <<'PY'
import json, sys, glob
rss_kib, wall = open(sys.argv[1]).read().split()[-2:]
report = json.load(open(glob.glob(sys.argv[2] + "/*report*.json")[0]))
seg = report.get("segmentation", report)
t = seg["timings_s"]
forward = t["forward"]
tiles = seg.get("memory_bytes", {}).get("logit_tiles_peak")
outside = float(wall) - forward
print(f"{sys.argv[3]:>8} {sys.argv[4]:>5} slices: peak RSS {int(rss_kib) / 2**20:6.2f} GiB, {float(wall):7.1f} s in all,"
      f" forward {forward:6.1f} s, outside the forward {outside:6.1f} s = {100 * outside / forward:5.1f}% of it"
      + (f"; logit tiles peak {tiles / 2**30:.2f} GiB" if tiles else "")
      + "; " + ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k not in ("forward",)))
PY
}

echo "model: built-in U-Net base $base depth $depth, 117 classes, patch ${patch}^3 at 1.5 mm; $threads threads"
for n in $slices; do
  make_ct "$n"
  run "$build" sagitta "$n"
  # The whole-volume engine needs volume x classes x 4 bytes: only where that fits.
  if [ -n "${PEER_BUILD:-}" ] && [[ " ${PEER_SLICES:-400} " == *" $n "* ]]; then run "$PEER_BUILD" peer "$n"; fi
done

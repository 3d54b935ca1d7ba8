#!/usr/bin/env bash
# Sliding-window inference on a real CT volume: Sagitta (C++) against (a) the sum of pure forward
# passes over the same windows and (b) the same algorithm in Python/PyTorch, same model, same
# preprocessed input, same run; threads 1 and 2; peak RSS against the volume plus one batch.
#   bench/segmentation_sliding_window.sh [build dir]   (env: BASE=16 DEPTH=4 PATCH=64 BATCH=1 WORK=/tmp/sagitta-seg-bench)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
external="${SAGITTA_EXTERNAL_DATA:-$root/../shared/data}"
ct="$external/ct/totalsegmentator/example_ct.nii.gz"
work="${WORK:-/tmp/sagitta-seg-bench}"
base="${BASE:-16}" depth="${DEPTH:-4}" patch="${PATCH:-64}" batch="${BATCH:-1}"
[ -f "$ct" ] || { echo "skipped: $ct not found (set SAGITTA_EXTERNAL_DATA)"; exit 0; }
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "skipped: /usr/bin/python3 has no torch (apt-get install python3-torch)"; exit 0; }
mkdir -p "$work"

# A 3D U-Net with random weights, exported by Sagitta's exporter (timing does not depend on training).
/usr/bin/python3 "$root/scripts/export_torchscript.py" --builtin-unet --base "$base" --depth "$depth" \
  --patch "$patch" "$patch" "$patch" --spacing 3 3 3 --channel CT:ct:0:200:-1024:3071 --labels organ \
  --name bench -o "$work/model" > /dev/null

echo "model: built-in U-Net base $base depth $depth, patch ${patch}^3, batch $batch; volume: $ct"
for threads in 1 2; do
  /usr/bin/time -f "%M" -o "$work/rss_cpp" "$build/bench/segmentation_bench" "$work/model/model.json" "$ct" "$threads" \
    "$batch" 0.5 "$work/volume.f32" > "$work/cpp_$threads.json"
  read -r sx sy sz < <(/usr/bin/python3 -c "import json;g=json.load(open('$work/cpp_$threads.json'))['grid'];print(*g)")
  /usr/bin/time -f "%M" -o "$work/rss_py" /usr/bin/python3 "$root/bench/segmentation_peer.py" "$work/model/model.json" \
    "$work/volume.f32" "$sx" "$sy" "$sz" "$threads" "$batch" 0.5 > "$work/py_$threads.json"
  PEER_OPTIMIZE=1 /usr/bin/python3 "$root/bench/segmentation_peer.py" "$work/model/model.json" \
    "$work/volume.f32" "$sx" "$sy" "$sz" "$threads" "$batch" 0.5 > "$work/pyopt_$threads.json"
  /usr/bin/python3 - "$work" "$threads" <<'PY'
import json, sys
work, t = sys.argv[1], sys.argv[2]
c = json.load(open(f"{work}/cpp_{t}.json")); p = json.load(open(f"{work}/py_{t}.json")); q = json.load(open(f"{work}/pyopt_{t}.json"))
rss_c = int(open(f"{work}/rss_cpp").read()) / 1024; rss_p = int(open(f"{work}/rss_py").read()) / 1024
print(f"\nthreads {t}: grid {c['grid']}, {c['windows']} windows")
print(f"  sagitta sliding window      {c['sliding_window_s']:8.2f} s (forward inside {c['forward_in_window_s']:.2f} s)")
print(f"  sum of pure forward passes  {c['pure_forward_sum_s']:8.2f} s   -> overhead {100 * c['overhead_vs_pure_forward']:+.1f}% (goal <= 5%);"
      f" time outside the forward calls {100 * c['overhead_outside_forward']:.1f}%")
print(f"  python/pytorch peer         {p['sliding_window_s']:8.2f} s   -> sagitta/python time ratio {c['sliding_window_s'] / p['sliding_window_s']:.2f}")
print(f"  python, frozen+optimised    {q['sliding_window_s']:8.2f} s   -> sagitta/python-optimised ratio {c['sliding_window_s'] / q['sliding_window_s']:.2f}")
print(f"  same result: centre logits {c['center_logit_sum']:.5f} (C++) vs {p['center_logit_sum']:.5f} (Python)")
extra = c['peak_rss_after_mib'] - c['peak_rss_before_mib']  # beyond one warm forward's activations
need = c['logit_buffers_mib'] + c['batch_io_mib']
print(f"  peak RSS sagitta {rss_c:.0f} MiB, python {rss_p:.0f} MiB (ratio {rss_c / rss_p:.2f}); volume {c['volume_mib']:.1f} MiB,"
      f" logit+weight buffers + one batch {need:.1f} MiB; RSS growth during inference beyond one forward {extra:.1f} MiB ({extra / need:.2f}x of that)")
PY
done
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
c1, c2 = (json.load(open(f"{w}/cpp_{t}.json")) for t in (1, 2))
p1, p2 = (json.load(open(f"{w}/py_{t}.json")) for t in (1, 2))
print(f"\nthreads 2 vs 1 speed-up: sagitta {c1['sliding_window_s'] / c2['sliding_window_s']:.2f}x, python {p1['sliding_window_s'] / p2['sliding_window_s']:.2f}x")
PY

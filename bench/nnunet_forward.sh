#!/usr/bin/env bash
# A 3d_fullres-sized nnU-Net PlainConvUNet (6 stages, 32..320 features, 3x3x3 kernels, one input
# channel, 4 classes) with random weights in nnU-Net's checkpoint layout: Sagitta's native network
# (C++, checkpoint read without Python) against python3-torch's forward of the same network with
# the same weights on an input of the same size, same machine, same run, alternating.
#   bench/nnunet_forward.sh [build dir]   (env: PATCH="128 128 128" THREADS=2 REPEATS=3 WORK=/tmp/sagitta-nnunet-bench)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
work="${WORK:-/tmp/sagitta-nnunet-bench}"
patch="${PATCH:-128 128 128}" threads="${THREADS:-2}" repeats="${REPEATS:-3}"
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "skipped: /usr/bin/python3 has no torch (apt-get install python3-torch)"; exit 0; }
mkdir -p "$work"
/usr/bin/python3 "$root/tests/segmentation/nnunet_fixture.py" --bench "$work"
echo "network: PlainConvUNet 6 stages 32..320, patch $patch, threads $threads, median of $repeats after one warm-up"
for round in 1 2; do
  /usr/bin/time -f "%M" -o "$work/rss_cpp" "$build/bench/nnunet_forward_bench" "$work/architecture.json" \
    "$work/checkpoint_final.pth" 1 4 "$threads" "$repeats" $patch > "$work/cpp.json"
  /usr/bin/time -f "%M" -o "$work/rss_py" /usr/bin/python3 - "$root" "$work" "$threads" "$repeats" $patch > "$work/py.json" <<'PY'
import json, sys, time
sys.path.insert(0, sys.argv[1] + "/tests/segmentation")
import torch
import nnunet_fixture as f
work, threads, repeats = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
size = [int(s) for s in sys.argv[5:]]
torch.set_num_threads(threads)
t0 = time.perf_counter()
net = f.Net(json.load(open(work + "/architecture.json")), 1, 4)
net.load_state_dict(torch.load(work + "/checkpoint_final.pth", map_location="cpu")["network_weights"])
net.eval()
load = time.perf_counter() - t0
x = torch.randn([1, 1] + size)
with torch.inference_mode():
    t0 = time.perf_counter(); y = net(x); first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); y = net(x); times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({"load_s": load, "first_s": first, "median_s": times[len(times) // 2]}))
PY
  /usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
c = json.load(open(w + "/cpp.json")); p = json.load(open(w + "/py.json"))
rc = int(open(w + "/rss_cpp").read()) / 1024; rp = int(open(w + "/rss_py").read()) / 1024
print(f"  sagitta C++ : load {c['load_s']:.2f} s, first {c['first_s']:.2f} s, median {c['median_s']:.2f} s, peak RSS {rc:.0f} MiB")
print(f"  python-torch: load {p['load_s']:.2f} s, first {p['first_s']:.2f} s, median {p['median_s']:.2f} s, peak RSS {rp:.0f} MiB")
print(f"  C++/python forward time ratio {c['median_s'] / p['median_s']:.2f}")
PY
done

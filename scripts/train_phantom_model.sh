#!/usr/bin/env bash
# Reproduces the phantom demo model in testdata/models/phantom: a small 3D U-Net that `sagitta demo`
# runs on the shipped demo series (testdata/demo/ct_phantom, a synthetic CT phantom).
#
# It is trained on synthetic phantoms only (tests/support/make_phantom_training_set.cpp: random
# body / organ / bone ellipsoids with the demo series' intensity model, half of them noisy) and
# scored on the demo series itself, which it never saw. It knows nothing about real anatomy: it
# exists so that the demo runs the whole pipeline — 3D sliding windows, label map, report, SEG,
# Grad-CAM, pictures — on data that ships with the project. For real CT use testdata/models/demo.
#
# Usage: scripts/train_phantom_model.sh [output folder]   (BUILD_DIR overrides the build folder)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$here/build}
out=${1:-$here/testdata/models/phantom}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$build/tests/segmentation/sagitta_make_phantom_training_set" "$work" 24 7
train=() train_labels=()
for i in $(seq 0 19); do
  train+=("$work/phantom_${i}_ct.nrrd") train_labels+=("$work/phantom_${i}_labels.nrrd")
done

"$build/modules/sagitta" train \
  --image "${train[@]}" --label "${train_labels[@]}" \
  --val-image "$work"/phantom_2{0,1,2,3}_ct.nrrd --val-label "$work"/phantom_2{0,1,2,3}_labels.nrrd \
  --labels organ=1,bone=2 --name sagitta-demo-phantom \
  --dimensions 3 --spacing 0.8,0.8,2.5 --patch 48,48,16 --base-channels 8 --depth 3 \
  --epochs 40 --iterations 20 --batch 2 --optimizer adam --lr 0.003 --foreground 0.5 \
  --seed 1 --threads 1 \
  --test-image "$here/testdata/demo/ct_phantom" --test-label "$work/demo_labels.nrrd" \
  -o "$out"

# The checkpoint (weights + optimiser state) is for resuming only.
rm -f "$out/checkpoint.pt" "$out/training.json"
# Say plainly in the card what this model is.
python3 - "$out/model.json" <<'PY'
import json, sys
card = json.load(open(sys.argv[1]))
card["description"] = ("Demo only: a small 3D U-Net trained on synthetic CT phantoms (scripts/train_phantom_model.sh) to find "
                       "the demo phantom's enhancing organ and dense bone; it knows nothing of real anatomy")
json.dump(card, open(sys.argv[1], "w"), indent=2, sort_keys=True)
open(sys.argv[1], "a").write("\n")
PY

#!/bin/sh
# DICOM SEG writing: a 512x512x300 label map with 10 labels, written as a SEG by Sagitta
# (DCMTK dcmseg) against the same label map written as NRRD (raw and gzip) by ITK, and read back.
# Usage: bench/seg_write.sh BUILD_DIR   (build the seg_write_bench target first)
set -eu
BUILD=${1:-build}
WORK=${WORK:-/tmp/sagitta-bench/seg}
REPEATS=${REPEATS:-3}
BIN="$BUILD/bench/seg_write_bench"
mkdir -p "$WORK"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in seg nrrd nrrd-gz read; do
  for i in $(seq "$REPEATS"); do "$BIN" "$mode" "$WORK"; done | sort -k3 -n | awk -v r="$REPEATS" 'NR==int((r+1)/2)'
done | tee "$WORK/results.txt"
awk '$1=="seg"{s=$3;sc=$5} $1=="nrrd"{n=$3;nc=$5} $1=="nrrd-gz"{g=$3;gc=$5} END{printf "SEG/NRRD wall %.2f cpu %.2f; SEG/NRRD-gzip wall %.2f cpu %.2f (medians)\n", s/n, sc/nc, s/g, sc/gc}' "$WORK/results.txt"

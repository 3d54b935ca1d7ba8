#!/usr/bin/env bash
# DICOM series -> volume file: Sagitta against dcm2niix and ITK's GDCM reader, same files, same run.
# Reports median wall time and peak RSS of each tool over REPEATS runs, and Sagitta's ratios.
#   bench/dicom_load.sh [build dir]      (env: REPEATS=5, WORK=/tmp/sagitta-bench)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
repeats="${REPEATS:-5}"
work="${WORK:-/tmp/sagitta-bench}"
external="${SAGITTA_EXTERNAL_DATA:-$root/../shared/data}"
mkdir -p "$work"

large="$work/ct512x512x400"
if [ ! -f "$large/.complete" ]; then
  rm -rf "$large"
  "$build/bench/make_bench_series" "$large" 512 512 400
  touch "$large/.complete"
fi
cat "$large"/* > /dev/null  # all tools read from the page cache

# run <name> <command...>: prints "seconds kilobytes" medians
measure() {
  local times=() mems=()
  for _ in $(seq "$repeats"); do
    rm -rf "$work/out" && mkdir -p "$work/out"
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    read -r t m < "$work/time.txt"
    times+=("$t"); mems+=("$m")
  done
  local mt mm
  mt=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (repeats + 1) / 2 ))p")
  mm=$(printf '%s\n' "${mems[@]}" | sort -g | sed -n "$(( (repeats + 1) / 2 ))p")
  echo "$mt $mm"
}

bench_series() {
  local label="$1" dir="$2" voxels="$3"
  local s d i
  s=$(measure "$build/modules/sagitta" convert "$dir" -o "$work/out/sagitta.nii")
  d=$(measure dcm2niix -z n -o "$work/out" -f dcm2niix "$dir")
  i=$(measure "$build/bench/itk_gdcm_convert" "$dir" "$work/out/itk.nii")
  read -r st sm <<< "$s"; read -r dt dm <<< "$d"; read -r it im <<< "$i"
  local vol_mb
  vol_mb=$(awk -v v="$voxels" 'BEGIN{printf "%.1f", v*2/1048576}')
  printf '\n%s (%s voxels, int16 volume %s MiB), median of %s runs\n' "$label" "$voxels" "$vol_mb" "$repeats"
  printf '  %-18s %8s s %9.1f MiB\n' sagitta "$st" "$(awk -v m="$sm" 'BEGIN{print m/1024}')"
  printf '  %-18s %8s s %9.1f MiB\n' dcm2niix "$dt" "$(awk -v m="$dm" 'BEGIN{print m/1024}')"
  printf '  %-18s %8s s %9.1f MiB\n' itk-gdcm "$it" "$(awk -v m="$im" 'BEGIN{print m/1024}')"
  awk -v b="$baseline_kb" -v st="$st" -v dt="$dt" -v it="$it" -v sm="$sm" -v dm="$dm" -v im="$im" -v vm="$vol_mb" 'BEGIN{
    printf "  time ratio sagitta/dcm2niix %.2f, sagitta/itk-gdcm %.2f\n", st/dt, st/it;
    printf "  peak RSS ratio sagitta/dcm2niix %.2f, sagitta/itk-gdcm %.2f, sagitta/volume %.2f (%.2f above the baseline)\n", sm/dm, sm/im, sm/1024/vm, (sm-b)/1024/vm}'
}

# The executable's own footprint (ITK, DCMTK and their libraries mapped), to separate fixed cost
# from per-volume cost.
/usr/bin/time -f "%M" -o "$work/time.txt" "$build/modules/sagitta" --version > /dev/null
baseline_kb=$(cat "$work/time.txt")
printf 'sagitta baseline RSS (--version): %.1f MiB\n' "$(awk -v m="$baseline_kb" 'BEGIN{print m/1024}')"

bench_series "uncompressed CT 512x512x400" "$large" $((512 * 512 * 400))
j2k="$external/ct/totalsegmentator/example_ct_dicom"
if [ -d "$j2k" ]; then
  bench_series "JPEG 2000 lossless CT 512x512x20 (real)" "$j2k" $((512 * 512 * 20))
else
  echo "JPEG 2000 series not found at $j2k; skipped"
fi

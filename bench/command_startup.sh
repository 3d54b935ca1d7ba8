#!/usr/bin/env bash
# What each command pays before it does its work: the shared libraries an executable maps, LibTorch
# and VTK among them, and the wall time and peak RSS of `sagitta info` and `sagitta convert` on a
# small series against dcm2niix converting the same series, in the same run.
#   bench/command_startup.sh [build dir]      (env: REPEATS=10, WORK=/tmp/sagitta-bench)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
repeats="${REPEATS:-10}"
work="${WORK:-/tmp/sagitta-bench}"
mkdir -p "$work"
series="$root/testdata/demo/ct_phantom"

echo "== libraries mapped (ldd): all / LibTorch / VTK"
for program in "$build/modules/sagitta" "$build"/libexec/sagitta/sagitta-*; do
  [ -e "$program" ] || continue
  libs=$(ldd "$program" | grep -c '=>' || true)
  torch=$(ldd "$program" | grep -c -E 'libtorch|libc10' || true)
  vtk=$(ldd "$program" | grep -c 'libvtk' || true)
  printf '  %-16s %4d %4d %4d\n' "$(basename "$program")" "$libs" "$torch" "$vtk"
done

# measure <command...>: median seconds and peak RSS (KiB) over REPEATS runs
measure() {
  local times=() mems=()
  for _ in $(seq "$repeats"); do
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > /dev/null 2>&1 || { echo "failed: $*" >&2; return 1; }
    read -r t m < "$work/time.txt"
    times+=("$t"); mems+=("$m")
  done
  echo "$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (repeats + 1) / 2 ))p")" \
       "$(printf '%s\n' "${mems[@]}" | sort -g | sed -n "$(( (repeats + 1) / 2 ))p")"
}

cat "$series"/* > /dev/null
echo "== $(ls "$series" | wc -l)-file series, median of $repeats: seconds, peak RSS MiB"
read -r ti mi < <(measure "$build/modules/sagitta" info "$series")
read -r tc mc < <(measure "$build/modules/sagitta" convert "$series" -o "$work/startup.nii")
read -r tv mv < <(measure "$build/modules/sagitta" --version)
mkdir -p "$work/dcm2niix"
read -r td md < <(measure dcm2niix -z n -o "$work/dcm2niix" -f startup "$series")
awk -v ti="$ti" -v mi="$mi" -v tc="$tc" -v mc="$mc" -v tv="$tv" -v mv="$mv" -v td="$td" -v md="$md" 'BEGIN {
  printf "  sagitta info       %6.3f s %6.1f MiB\n", ti, mi / 1024
  printf "  sagitta convert    %6.3f s %6.1f MiB\n", tc, mc / 1024
  printf "  sagitta --version  %6.3f s %6.1f MiB   (the front alone)\n", tv, mv / 1024
  printf "  dcm2niix           %6.3f s %6.1f MiB   (the same series to NIfTI)\n", td, md / 1024
  printf "  convert / dcm2niix: %.2fx time, %.2fx RSS\n", tc / (td > 0 ? td : 0.01), mc / md
}'

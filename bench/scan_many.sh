#!/usr/bin/env bash
# `sagitta info` over a folder of many small DICOM files against dcm2niix on the same folder:
# wall time and peak RSS at 10,000, 50,000 and 100,000 files (flat memory means the RSS grows by
# a small, constant amount per file, not with what the files hold). See bench/README.md.
#
#   bench/scan_many.sh [BUILD_DIR]     environment: WORK (/tmp/sagitta-scan-bench), SIZES, THREADS
set -euo pipefail
build="${1:-build}"
sagitta="$build/modules/sagitta"
work="${WORK:-/tmp/sagitta-scan-bench}"
sizes="${SIZES:-10000 50000 100000}"
threads="${THREADS:-2}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -x "$sagitta" ] || { echo "build $sagitta first" >&2; exit 2; }
command -v dcm2niix >/dev/null || { echo "dcm2niix not installed (Debian package dcm2niix)" >&2; exit 2; }

measure() {  # label, command...: prints seconds and peak RSS (MiB)
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > /dev/null 2> "$work/err.txt" || {
    echo "$label failed:"; tail -n 5 "$work/err.txt"; return 1; }
  read -r secs kb < "$work/time.txt"
  printf '%-34s %8.2f s %8.1f MiB\n' "$label" "$secs" "$(echo "$kb / 1024" | bc -l)"
  echo "$secs $kb" > "$work/last.txt"
}

mkdir -p "$work"
echo "files   tool                                  time     peak RSS"
for n in $sizes; do
  dir="$work/files-$n"
  if [ ! -f "$dir/.complete" ]; then
    rm -rf "$dir"
    python3 "$here/make_many_dicom.py" "$dir" "$n" 100
    touch "$dir/.complete"
  fi
  find "$dir" -type f -exec cat {} + > /dev/null  # page cache warm for both tools
  measure "$n sagitta info --json" "$sagitta" info --json --threads "$threads" "$dir"
  read -r s_secs s_kb < "$work/last.txt"
  out="$work/dcm2niix-$n"
  rm -rf "$out" && mkdir -p "$out"
  # -b o: sidecars only, no NIfTI: dcm2niix's closest to a scan (it still reads every header).
  measure "$n dcm2niix -b o" dcm2niix -b o -z n -o "$out" "$dir"
  read -r d_secs d_kb < "$work/last.txt"
  printf '%-34s %8.2fx time, %.2fx RSS (sagitta / dcm2niix)\n' "$n ratio" \
    "$(echo "$s_secs / $d_secs" | bc -l)" "$(echo "$s_kb / $d_kb" | bc -l)"
done

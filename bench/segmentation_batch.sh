#!/usr/bin/env bash
# A cohort of small CTs: one `sagitta segment --cohort` against one `sagitta segment` per study,
# same model, same options, same inputs, same run; studies per hour and their ratio.
#
#   cmake --build build --target sagitta make_bench_series
#   bench/segmentation_batch.sh build          # STUDIES=20 REPEATS=1 by default
#
# Environment: STUDIES (20), SIZE ("128 128 32": rows columns slices of each synthetic CT series),
# MODEL (the shipped demo CT model, testdata/models/demo/model.json), THREADS (2), REPEATS (1; the
# order of the two ways alternates between repeats and the medians are printed), WORK
# (/tmp/sagitta-bench-batch).
set -euo pipefail
build="$(cd "${1:-build}" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
studies="${STUDIES:-20}"
size="${SIZE:-128 128 32}"
model="${MODEL:-$root/testdata/models/demo/model.json}"
threads="${THREADS:-2}"
repeats="${REPEATS:-1}"
work="${WORK:-/tmp/sagitta-bench-batch}"
sagitta="$build/modules/sagitta"
for tool in "$sagitta" "$build/bench/make_bench_series"; do
  [ -x "$tool" ] || { echo "missing $tool: cmake --build $build --target sagitta make_bench_series" >&2; exit 2; }
done

# The cohort: synthetic uncompressed CT series (the benchmark series' phantom, smaller), written once.
mkdir -p "$work/cohort"
manifest="$work/cohort_${studies}.csv"
echo "id,input" > "$manifest"
for i in $(seq 1 "$studies"); do
  id=$(printf "ct%02d" "$i")
  series="$work/cohort/${id}_${size// /x}"
  [ -d "$series" ] || "$build/bench/make_bench_series" "$series" $size
  echo "$id,$series" >> "$manifest"
done
cat "$work"/cohort/*/* > /dev/null  # page cache warm for both ways
echo "cohort: $studies CT series of ${size// /x} voxels; model $(basename "$(dirname "$model")") ($model); --threads $threads"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

now() { date +%s.%N; }
# Each way prints "wall cpu": elapsed seconds and the CPU seconds (user + sys) of its processes.
# On a shared machine the wall time follows the other load; the CPU time much less so.
TIMEFORMAT="%R %U %S"
separate() {
  rm -rf "$work/separate"
  { time (tail -n +2 "$manifest" | while IFS=, read -r id series; do
      "$sagitta" segment "$series" --model "$model" -o "$work/separate/$id" --threads "$threads" --no-progress >/dev/null
    done); } 2>&1 | awk '{print $1, $2 + $3}'
}
cohort() {
  rm -rf "$work/cohort_out"
  { time "$sagitta" segment --cohort "$manifest" --model "$model" -o "$work/cohort_out" --threads "$threads" \
      --no-progress >/dev/null; } 2>&1 | awk '{print $1, $2 + $3}'
}

sep_wall=(); coh_wall=(); sep_cpu=(); coh_cpu=()
for r in $(seq 1 "$repeats"); do
  if [ $((r % 2)) -eq 1 ]; then s=$(separate); c=$(cohort); else c=$(cohort); s=$(separate); fi
  read -r sw sc <<<"$s"; read -r cw cc <<<"$c"
  printf "repeat %d (load %s): %d separate runs %.1f s wall, %.1f s CPU; one --cohort run %.1f s wall, %.1f s CPU\n" \
    "$r" "$(cut -d' ' -f1 /proc/loadavg)" "$studies" "$sw" "$sc" "$cw" "$cc"
  sep_wall+=("$sw"); coh_wall+=("$cw"); sep_cpu+=("$sc"); coh_cpu+=("$cc")
done

# Same outputs both ways, byte for byte.
tail -n +2 "$manifest" | while IFS=, read -r id series; do
  cmp -s "$work/separate/$id/labels.nrrd" "$work/cohort_out/$id/labels.nrrd" || { echo "labels of $id differ" >&2; exit 1; }
done
echo "labels identical both ways for all $studies studies"

median() { printf "%s\n" "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
s=$(median "${sep_wall[@]}"); c=$(median "${coh_wall[@]}")
sc=$(median "${sep_cpu[@]}"); cc=$(median "${coh_cpu[@]}")
printf "\n| way (medians of %d) | wall s | studies per hour (wall) | CPU s | studies per CPU-hour |\n|---|---|---|---|---|\n" "$repeats"
printf "| %d x \`sagitta segment\` | %.1f | %.0f | %.1f | %.0f |\n" "$studies" "$s" "$(echo "$studies * 3600 / $s" | bc -l)" \
  "$sc" "$(echo "$studies * 3600 / $sc" | bc -l)"
printf "| \`sagitta segment --cohort\` | %.1f | %.0f | %.1f | %.0f |\n" "$c" "$(echo "$studies * 3600 / $c" | bc -l)" \
  "$cc" "$(echo "$studies * 3600 / $cc" | bc -l)"
printf "ratio (cohort / separate): %.2fx studies per hour, %.2fx studies per CPU-hour\n" "$(echo "$s / $c" | bc -l)" \
  "$(echo "$sc / $cc" | bc -l)"

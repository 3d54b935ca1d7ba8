#!/usr/bin/env bash
# Runs one libFuzzer harness for a while on its corpus, after replaying the minimised crashers.
# SAGITTA_FUZZ_SEED fixes libFuzzer's seed (the fuzz_smoke tests set it).
#
#   run_fuzzer.sh <fuzzer> <harness> <seconds> <corpus-root> <source-dir> [<external-data>]
#
# Seeds (made once per corpus root, read-only): the pydicom test files Debian ships
# (python3-pydicom), a few files of the shared data when present, the project's testdata; JPEG 2000
# codestreams cut out of the J2K files for the j2k harness. New interesting inputs go to
# <corpus-root>/<harness>; a crash leaves <corpus-root>/crash-<harness>-* and fails the test:
# minimise it (fuzzer -minimize_crash=1 <file>), fix the bug, and add the minimised file to
# tests/fuzz/regressions/<harness>/.
set -euo pipefail
fuzzer="$1" harness="$2" seconds="$3" corpus_root="$4" source_dir="$5" external="${6:-}"
seeds="$corpus_root/seeds"
pydicom_files=/usr/lib/python3/dist-packages/pydicom/data/test_files

make_seeds() {
  local tmp="$seeds.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"/{dicom,seg,rtstruct,j2k,volume,text,multipart}
  # DICOM files of every transfer syntax, small ones only (the fuzzer mutates each).
  if [ -d "$pydicom_files" ]; then
    find "$pydicom_files" -maxdepth 1 -type f -size -600k -name '*.dcm' -exec cp {} "$tmp/dicom/" \;
    find "$pydicom_files" -maxdepth 1 -type f -size -600k -name '*SEG*' -exec cp {} "$tmp/seg/" \; || true
    find "$pydicom_files" -maxdepth 1 -type f -size -600k -name 'rtstruct*.dcm' -exec cp {} "$tmp/rtstruct/" \; || true
  fi
  find "$source_dir/testdata" -type f -size -600k \( -name '*.dcm' -o -name 'IM*' \) 2>/dev/null | head -n 4 |
    while read -r f; do cp "$f" "$tmp/dicom/testdata-$(basename "$f")"; done
  if [ -n "$external" ] && [ -d "$external" ]; then
    find "$external/ct/totalsegmentator/example_ct_dicom" -type f 2>/dev/null | head -n 2 |
      while read -r f; do cp "$f" "$tmp/dicom/ct-$(basename "$f")"; done
    find "$external/dicom/dcm_qa_nih/In" -type f 2>/dev/null | awk 'NR % 150 == 1' | head -n 8 |
      while read -r f; do cp "$f" "$tmp/dicom/qa-$(echo "$f" | md5sum | cut -c1-8)"; done
    find "$external/seg/dcmqi" -type f -name '*.dcm' -size -600k 2>/dev/null | head -n 8 |
      while read -r f; do cp "$f" "$tmp/seg/dcmqi-$(basename "$f")"; done
    # Volumes: the first byte chooses the reader (0 NRRD, 1 NIfTI, 2 gzipped NIfTI, 3 MHA).
    find "$external/seg/dcmqi" -type f -name '*.nrrd' -size -300k 2>/dev/null | head -n 4 |
      while read -r f; do { printf '\x00'; cat "$f"; } > "$tmp/volume/$(basename "$f")"; done
    for f in "$external"/ct/totalsegmentator/example_ct_sm.nii.gz; do
      [ -f "$f" ] && { printf '\x02'; cat "$f"; } > "$tmp/volume/ct_sm.nii.gz"
      [ -f "$f" ] && { printf '\x01'; gzip -dc "$f" 2>/dev/null | head -c 400000 || true; } > "$tmp/volume/ct_sm.nii"
    done
  fi
  cp "$tmp"/seg/* "$tmp/dicom/" 2>/dev/null || true
  # JPEG 2000 codestreams with the 8-byte pixel description the j2k harness expects.
  /usr/bin/python3 - "$tmp/dicom" "$tmp/j2k" <<'PY' || true
import struct, sys, pathlib
try:
    import pydicom
    from pydicom.encaps import generate_pixel_data_frame
except Exception:
    sys.exit(0)
out = pathlib.Path(sys.argv[2])
for p in sorted(pathlib.Path(sys.argv[1]).iterdir()):
    try:
        d = pydicom.dcmread(str(p))
        if not str(d.file_meta.TransferSyntaxUID).startswith("1.2.840.10008.1.2.4.9"):
            continue
        frame = next(generate_pixel_data_frame(d.PixelData))
        head = struct.pack("<HHBBBB", (d.Rows - 1) % 2048, (d.Columns - 1) % 2048, 1 if d.SamplesPerPixel == 3 else 0,
                           1 if d.BitsAllocated == 16 else 0, d.BitsStored - 1, d.PixelRepresentation)
        (out / (p.name + ".j2k")).write_bytes(head + frame[:400000])
    except Exception:
        pass
PY
  printf 'ISO_IR 100\0IRM c\xe9r\xe9brale' > "$tmp/text/latin1"
  printf '\\ISO 2022 IR 87\0Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B' > "$tmp/text/jis"
  printf '\\ISO 2022 IR 149\0\x1b$)C\xc8\xab' > "$tmp/text/ksc"
  printf 'GB18030\0\xcd\xf5^\xd0\xa1\xb6\xab' > "$tmp/text/gb18030"
  printf 'ISO_IR 192\0caf\xc3\xa9' > "$tmp/text/utf8"
  # WADO-RS answers: a Content-Type line, then the body (CRLF and LF, a preamble, two parts).
  printf 'multipart/related; type="application/dicom"; boundary="b0"\n--b0\r\nContent-Type: application/dicom\r\n\r\nDICM\r\n--b0\r\n\r\nx\r\n--b0--\r\n' \
    > "$tmp/multipart/crlf"
  printf 'multipart/related;boundary=zz\npreamble\n--zz \nContent-Type: application/dicom\n\nab\r\n--zz--\nepilogue' \
    > "$tmp/multipart/lf"
  rm -rf "$seeds"
  mv "$tmp" "$seeds"
}

mkdir -p "$corpus_root"
# The harnesses' runs start in parallel: one makes the seeds, the others wait for it.
(
  flock 9
  [ -d "$seeds" ] || make_seeds
) 9> "$corpus_root/seeds.lock"
case "$harness" in
  header | pixels) seed_dir="$seeds/dicom" ;;
  seg) seed_dir="$seeds/seg" ;;
  *) seed_dir="$seeds/$harness" ;;
esac
corpus="$corpus_root/$harness"
mkdir -p "$corpus" "$seed_dir"  # a seed folder made before a harness existed lacks its sub-folder

# Every minimised crasher first: each must run cleanly.
export LSAN_OPTIONS="suppressions=$source_dir/tests/fuzz/lsan.supp:print_suppressions=0"
regressions="$source_dir/tests/fuzz/regressions/$harness"
if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
  "$fuzzer" -runs=1 "$regressions"/* > "$corpus_root/$harness-regressions.log" 2>&1 ||
    { tail -n 40 "$corpus_root/$harness-regressions.log"; exit 1; }
fi

log="$corpus_root/$harness.log"
status=0
seed_flag=()
[ -n "${SAGITTA_FUZZ_SEED:-}" ] && seed_flag=(-seed="$SAGITTA_FUZZ_SEED")
"$fuzzer" "${seed_flag[@]}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -malloc_limit_mb=2048 -max_len=1048576 \
  -print_final_stats=1 -artifact_prefix="$corpus_root/crash-$harness-" "$corpus" "$seed_dir" > "$log" 2>&1 || status=$?
runs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
echo "fuzz $harness: ${runs:-?} executions in ${seconds} s, exit $status"
if [ "$status" -ne 0 ]; then
  grep -E 'ERROR|SUMMARY|==[0-9]+==|#[0-9]+ ' "$log" | head -n 60
  exit 1
fi

#!/usr/bin/env bash
# DICOMweb transfers against Orthanc with its DICOMweb plugin: STOW-RS of a folder of DICOM files
# and WADO-RS of the study, `sagitta dicomweb` against curl sending / fetching the same bytes
# (curl does no checking and no multipart parsing: a floor), and `sagitta pacs get` (C-GET) of
# the same study, in the same run on the same server.
#   bench/dicomweb_transfer.sh [build dir] [folder of DICOM files]   (env: REPEATS=3, WORK=/tmp/sagitta-bench-web)
# Default folder: the GE series of dcm_qa_nih in $SAGITTA_EXTERNAL_DATA (600 files, 15 MB).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build}"
data="${SAGITTA_EXTERNAL_DATA:-$root/../shared/data}"
repeats="${REPEATS:-3}"
work="${WORK:-/tmp/sagitta-bench-web}"
sagitta="$build/modules/sagitta"
command -v /usr/sbin/Orthanc > /dev/null && [ -r /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] ||
  { echo "needs Debian packages orthanc and orthanc-dicomweb"; exit 1; }

rm -rf "$work" && mkdir -p "$work/files" "$work/orthanc/storage" "$work/orthanc/logs"
if [ -n "${2:-}" ]; then
  find "$2" -type f ! -name '.*' -exec cp {} "$work/files/" \;
else
  for f in "$data"/dicom/dcm_qa_nih/In/20180918GE/mr_*/*; do
    case "$f" in *.txt) ;; *) cp "$f" "$work/files/$(basename "$(dirname "$f")")_$(basename "$f")" ;; esac
  done
fi
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_port=$(free_port); dicom_port=$(free_port)
cat > "$work/orthanc/orthanc.json" << EOF
{"Name": "bench", "StorageDirectory": "$work/orthanc/storage", "IndexDirectory": "$work/orthanc/storage",
 "DicomAet": "ORTHANC", "DicomPort": $dicom_port, "HttpPort": $http_port, "RemoteAccessAllowed": false,
 "AuthenticationEnabled": false, "DicomAlwaysAllowGet": true, "DicomCheckCalledAETitle": false,
 "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"], "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}}
EOF
/usr/sbin/Orthanc "$work/orthanc/orthanc.json" --logdir="$work/orthanc/logs" > /dev/null 2>&1 &
orthanc=$!
trap 'kill $orthanc 2> /dev/null || true' EXIT
url="http://127.0.0.1:$http_port/dicom-web"
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$http_port/system" && break; sleep 0.2; done

# The same files as one multipart body for curl.
/usr/bin/python3 - "$work/files" "$work/stow.bin" << 'PY'
import pathlib, sys
with open(sys.argv[2], "wb") as out:
    for f in sorted(pathlib.Path(sys.argv[1]).iterdir()):
        out.write(b"--bench-boundary\r\nContent-Type: application/dicom\r\n\r\n" + f.read_bytes() + b"\r\n")
    out.write(b"--bench-boundary--\r\n")
PY
files=$(ls "$work/files" | wc -l)
wipe() {
  for id in $(curl -s "http://127.0.0.1:$http_port/studies" | /usr/bin/python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)))'); do
    curl -s -X DELETE "http://127.0.0.1:$http_port/studies/$id" > /dev/null
  done
}
seconds() { local t0 t1; t0=$(date +%s.%N); "$@" > /dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
stow_curl() {
  curl -sf -o /dev/null -X POST -H 'Content-Type: multipart/related; type="application/dicom"; boundary=bench-boundary' \
    -H 'Accept: application/dicom+json' --data-binary @"$work/stow.bin" "$url/studies"
}

echo "== $files files, $(du -sh "$work/files" | cut -f1); every repeat printed"
for r in $(seq "$repeats"); do
  wipe; a=$(seconds "$sagitta" dicomweb store "$work/files" --url "$url" --no-progress)
  wipe; b=$(seconds stow_curl)
  printf 'STOW-RS  repeat %d: sagitta %6.2f s   curl %6.2f s   ratio %.2f\n' "$r" "$a" "$b" "$(echo "$a / $b" | bc -l)"
done
study=$("$sagitta" dicomweb query --url "$url" --json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["matches"][0]["StudyInstanceUID"])')
for r in $(seq "$repeats"); do
  rm -rf "$work/wado" "$work/get" "$work/raw.bin"
  a=$(seconds "$sagitta" dicomweb retrieve --url "$url" --study "$study" -o "$work/wado" --no-progress)
  b=$(seconds curl -sf -o "$work/raw.bin" -H 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*' "$url/studies/$study")
  c=$(seconds "$sagitta" pacs get --study "$study" -o "$work/get" --port "$dicom_port" --aec ORTHANC --no-progress)
  printf 'retrieve repeat %d: WADO-RS sagitta %6.2f s   curl %6.2f s (ratio %.2f)   C-GET sagitta %6.2f s\n' "$r" "$a" "$b" \
    "$(echo "$a / $b" | bc -l)" "$c"
done
same=$(comm -12 <(sha256sum "$work"/wado/* | cut -d' ' -f1 | sort) <(sha256sum "$work"/files/* | cut -d' ' -f1 | sort) | wc -l)
echo "retrieved files byte-identical to a stored file: $same of $files"

#!/usr/bin/python3
"""Compares two folders of DICOM files with pydicom, instance by instance (matched by
SOPInstanceUID): the transfer syntax and the Pixel Data element's bytes as stored (encapsulated
fragments included, nothing decoded). Prints JSON:
{"a": n, "b": n, "same_instances": bool, "identical_pixel_data": n, "same_transfer_syntax": n,
 "transfer_syntaxes_b": [...], "differences": [...]}. Exit 3 when pydicom is missing."""
import json
import os
import sys

try:
    import pydicom
except ImportError:
    print("pydicom missing (Debian package python3-pydicom)", file=sys.stderr)
    sys.exit(3)


def read(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for n in sorted(names):
            if n.startswith("."):
                continue
            ds = pydicom.dcmread(os.path.join(root, n))
            out[str(ds.SOPInstanceUID)] = ds
    return out


a, b = read(sys.argv[1]), read(sys.argv[2])
result = {"a": len(a), "b": len(b), "same_instances": sorted(a) == sorted(b), "identical_pixel_data": 0,
          "same_transfer_syntax": 0, "differences": []}
syntaxes = set()
for uid, db in b.items():
    syntaxes.add(str(db.file_meta.TransferSyntaxUID))
    da = a.get(uid)
    if da is None:
        result["differences"].append(uid + ": not in the first folder")
        continue
    if str(da.file_meta.TransferSyntaxUID) == str(db.file_meta.TransferSyntaxUID):
        result["same_transfer_syntax"] += 1
    if "PixelData" in da and "PixelData" in db and da.PixelData == db.PixelData:
        result["identical_pixel_data"] += 1
    else:
        result["differences"].append(uid + ": pixel data differ")
result["transfer_syntaxes_b"] = sorted(syntaxes)
print(json.dumps(result))

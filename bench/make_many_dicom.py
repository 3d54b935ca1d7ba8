#!/usr/bin/env python3
"""Writes N small DICOM files (explicit VR little endian, 16x16 int16 CT slices) for the scan
benchmark: series of SLICES files each, one folder per 1000 files. Raw bytes from a template, so
100,000 files take seconds; every file is a valid, distinct instance (own SOP Instance UID,
position and instance number).

    make_many_dicom.py OUT_DIR N [SLICES]
"""
import os
import struct
import sys


def element(group, elem, vr, value):
    if len(value) % 2:
        value += b"\0" if vr == b"UI" else b" "
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH", group, elem) + vr + b"\0\0" + struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, elem) + vr + struct.pack("<H", len(value)) + value


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    slices = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    root = "1.2.826.0.1.3680043.8.498.77"
    pixels = bytes(range(256)) * 2  # 16x16 int16
    for i in range(n):
        series, k = divmod(i, slices)
        sop = f"{root}.3.{i + 1}".encode()
        meta = (element(2, 1, b"OB", b"\0\1") + element(2, 2, b"UI", b"1.2.840.10008.5.1.4.1.1.2")
                + element(2, 3, b"UI", sop) + element(2, 0x10, b"UI", b"1.2.840.10008.1.2.1"))
        meta = element(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
        ds = b"".join([
            element(8, 0x16, b"UI", b"1.2.840.10008.5.1.4.1.1.2"), element(8, 0x18, b"UI", sop),
            element(8, 0x20, b"DA", b"20240101"), element(8, 0x60, b"CS", b"CT"),
            element(8, 0x103E, b"LO", f"bench series {series + 1}".encode()),
            element(0x10, 0x10, b"PN", b"Bench^Patient"), element(0x10, 0x20, b"LO", b"BENCH"),
            element(0x20, 0x0D, b"UI", f"{root}.1.1".encode()),
            element(0x20, 0x0E, b"UI", f"{root}.2.{series + 1}".encode()),
            element(0x20, 0x11, b"IS", str(series + 1).encode()), element(0x20, 0x13, b"IS", str(k + 1).encode()),
            element(0x20, 0x32, b"DS", f"-8\\-8\\{2.5 * k:g}".encode()),
            element(0x20, 0x37, b"DS", b"1\\0\\0\\0\\1\\0"),
            element(0x20, 0x52, b"UI", f"{root}.4.1".encode()),
            element(0x28, 0x02, b"US", struct.pack("<H", 1)), element(0x28, 0x04, b"CS", b"MONOCHROME2"),
            element(0x28, 0x10, b"US", struct.pack("<H", 16)), element(0x28, 0x11, b"US", struct.pack("<H", 16)),
            element(0x28, 0x30, b"DS", b"1\\1"), element(0x28, 0x100, b"US", struct.pack("<H", 16)),
            element(0x28, 0x101, b"US", struct.pack("<H", 12)), element(0x28, 0x102, b"US", struct.pack("<H", 11)),
            element(0x28, 0x103, b"US", struct.pack("<H", 1)), element(0x28, 0x1052, b"DS", b"-1024"),
            element(0x28, 0x1053, b"DS", b"1"), element(0x7FE0, 0x10, b"OW", pixels)])
        folder = os.path.join(out, f"d{i // 1000:04d}")
        if i % 1000 == 0:
            os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"IM{i:06d}.dcm"), "wb") as f:
            f.write(b"\0" * 128 + b"DICM" + meta + ds)


if __name__ == "__main__":
    main()

"""Reads a DICOM SEG with pydicom (an independent reader) and prints what a viewer would see:
frame count, frame size, and the number of set pixels per segment (from the per-frame
Segment Identification Sequence and the unpacked 1-bit pixel data)."""
import sys

import numpy as np
import pydicom

ds = pydicom.dcmread(sys.argv[1])
assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4", ds.SOPClassUID
assert ds.Modality == "SEG"
pixels = ds.pixel_array  # frames x rows x columns
if pixels.ndim == 2:
    pixels = pixels[np.newaxis]
print(f"frames {int(ds.NumberOfFrames)} rows {int(ds.Rows)} columns {int(ds.Columns)} type {ds.SegmentationType}")
counts = {}
for index, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):
    segment = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
    counts[segment] = counts.get(segment, 0) + int(np.count_nonzero(pixels[index]))
    source = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
    assert source, "frame without source image"
for item in ds.SegmentSequence:
    number = int(item.SegmentNumber)
    print(f"segment {number} voxels {counts.get(number, 0)} label {item.SegmentLabel}")

"""Independent checks of Sagitta's RTSTRUCT, TID 1500 SR and LABELMAP SEG with pydicom (and
shapely for polygon areas). Exits non-zero with a message when something does not hold.

  rtstruct FILE IMAGE_FOLDER     per ROI: contour count and the even-odd area (mm^2) of its
                                 contours, each contour checked to lie on its referenced image
  sr FILE SEG IMAGE_FOLDER       per measurement group: the SR's volume and mean against the
                                 voxels of the referenced SEG segment and the CT's pixels
  labelmap FILE                  per segment number: voxel count and the palette colour
"""
import os
import sys

import numpy as np
import pydicom


def images_by_uid(folder):
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                ds = pydicom.dcmread(os.path.join(root, name))
            except Exception:
                continue
            uid = ds.get("SOPInstanceUID") or ds.file_meta.get("MediaStorageSOPInstanceUID")
            out[str(uid)] = ds
    return out


def plane_of(image):
    ipp = np.array([float(v) for v in image.ImagePositionPatient])
    iop = [float(v) for v in image.ImageOrientationPatient]
    row, col = np.array(iop[:3]), np.array(iop[3:])
    return ipp, row, col, np.cross(row, col)


def check_rtstruct(path, folder):
    from shapely.geometry import Polygon

    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.481.3", ds.SOPClassUID
    assert ds.Modality == "RTSTRUCT"
    images = images_by_uid(folder)
    listed = set()
    for frame in ds.ReferencedFrameOfReferenceSequence:
        for study in frame.RTReferencedStudySequence:
            for series in study.RTReferencedSeriesSequence:
                listed |= {str(i.ReferencedSOPInstanceUID) for i in series.ContourImageSequence}
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    for roi in ds.ROIContourSequence:
        per_slice = {}
        count = 0
        for contour in getattr(roi, "ContourSequence", []):
            assert contour.ContourGeometricType == "CLOSED_PLANAR"
            points = np.array([float(v) for v in contour.ContourData]).reshape(-1, 3)
            assert len(points) == int(contour.NumberOfContourPoints)
            uid = str(contour.ContourImageSequence[0].ReferencedSOPInstanceUID)
            assert uid in listed, f"contour image {uid} not in the referenced series"
            ipp, row, col, normal = plane_of(images[uid])
            d = points - ipp
            off = np.abs(d @ normal).max()
            assert off < 0.01, f"contour {off} mm off its image plane"
            polygon = Polygon(np.stack([d @ row, d @ col], axis=1))
            assert polygon.is_valid, "self-intersecting contour"
            per_slice[uid] = per_slice[uid].symmetric_difference(polygon) if uid in per_slice else polygon
            count += 1
        area = sum(g.area for g in per_slice.values())
        print(f"roi {names[int(roi.ReferencedROINumber)]} contours {count} area_mm2 {area:.4f}")


def content(item, code):
    return [c for c in getattr(item, "ContentSequence", []) if c.ConceptNameCodeSequence[0].CodeValue == code]


def check_sr(path, seg_path, folder):
    sr = pydicom.dcmread(path)
    seg = pydicom.dcmread(seg_path)
    assert sr.Modality == "SR"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    images = images_by_uid(folder)
    pixels = seg.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    spacing = [float(v) for v in seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing]
    thickness = float(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness)
    voxels, sums = {}, {}
    for index, frame in enumerate(seg.PerFrameFunctionalGroupsSequence):
        number = int(frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        mask = pixels[index] > 0
        voxels[number] = voxels.get(number, 0) + int(mask.sum())
        uid = str(frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
        image = images[uid]
        hu = image.pixel_array * float(image.get("RescaleSlope", 1)) + float(image.get("RescaleIntercept", 0))
        sums[number] = sums.get(number, 0.0) + float(hu[mask].sum())
    groups = []
    for container in content(sr, "126010"):  # Imaging Measurements
        groups += content(container, "125007")  # Measurement Group
    assert groups, "no measurement groups"
    for group in groups:
        ref = content(group, "121191")[0]  # Referenced Segment
        sop = ref.ReferencedSOPSequence[0]
        assert sop.ReferencedSOPInstanceUID == seg.SOPInstanceUID
        number = int(sop.ReferencedSegmentNumber)
        source = content(group, "121232")[0].UID  # Source series for segmentation
        assert source == seg.ReferencedSeriesSequence[0].SeriesInstanceUID
        volume = float(content(group, "118565006")[0].MeasuredValueSequence[0].NumericValue)
        expected = voxels[number] * spacing[0] * spacing[1] * thickness / 1000.0
        mean_items = content(group, "112031")
        mean = float(mean_items[0].MeasuredValueSequence[0].NumericValue) if mean_items else float("nan")
        expected_mean = sums[number] / voxels[number]
        print(f"segment {number} volume_ml {volume:.6g} seg_ml {expected:.6g} mean {mean:.6g} ct_mean {expected_mean:.6g}")
        assert abs(volume - expected) <= 1e-4 * max(1.0, expected), "volume differs from the SEG"
        assert abs(mean - expected_mean) <= 1e-3 * max(1.0, abs(expected_mean)), "mean differs from the CT"


def check_labelmap(path):
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.7", ds.SOPClassUID
    assert ds.SegmentationType == "LABELMAP"
    pixels = ds.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[np.newaxis]
    numbers = [int(s.SegmentNumber) for s in ds.SegmentSequence]
    red = np.frombuffer(ds.RedPaletteColorLookupTableData, dtype="<u2") if "RedPaletteColorLookupTableData" in ds else None
    for number in numbers:
        colour = "" if red is None else f" red {int(red[number]) >> 8}"
        print(f"segment {number} voxels {int((pixels == number).sum())}{colour}")
    stray = set(np.unique(pixels).tolist()) - set(numbers) - {0}
    assert not stray, f"pixel values without a segment: {stray}"


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "rtstruct":
        check_rtstruct(sys.argv[2], sys.argv[3])
    elif mode == "sr":
        check_sr(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "labelmap":
        check_labelmap(sys.argv[2])
    else:
        sys.exit(f"unknown mode {mode}")

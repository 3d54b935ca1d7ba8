#pragma once
// DCMTK -> ITK: pixel data of a stack into itk::Image<float,3> volumes in the scanner's geometry
// (LPS, origin at the centre of the first voxel, direction columns = row, column, slice axes).
#include <itkImage.h>

#include <string>
#include <vector>

#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/series_info.h"

namespace sagitta::dicom {

using Image = itk::Image<float, 3>;

// What to do when slices are not evenly spaced (a missing slice, variable spacing).
enum class IrregularSpacing {
  Refuse,    // throw DicomError naming the gap (default: never silently misplace voxels)
  Resample,  // linear interpolation along the slice normal onto a uniform grid
};

struct LoadOptions {
  IrregularSpacing irregular_spacing = IrregularSpacing::Refuse;
  int threads = 0;  // decoding threads; 0: all hardware threads
  // Relative tolerance on slice gaps before spacing counts as irregular.
  double spacing_tolerance = 0.01;
};

struct LoadedSeries {
  // One volume per time point / repetition; a plain 3D series has exactly one.
  std::vector<Image::Pointer> volumes;
  SeriesInfo info;
  std::vector<Decision> decisions;  // spacing, tilt, multi-volume, inversion... decisions
  // Stored pixel representation, to write integer outputs without loss when possible.
  int bits_allocated = 16, bits_stored = 16;
  bool pixel_signed = true;
  bool rescaled = false;  // some slice had a slope != 1 or intercept != 0
};

// Loads one stack. Throws DicomError for unreadable pixel data, inconsistent geometry or
// irregular spacing (unless options allow resampling).
LoadedSeries load(const Stack& stack, const LoadOptions& options = {});

}  // namespace sagitta::dicom

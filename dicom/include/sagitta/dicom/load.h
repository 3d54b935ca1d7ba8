#pragma once
// DCMTK -> ITK: pixel data of a stack into itk::Image<float,3> volumes in the scanner's geometry
// (LPS, origin at the centre of the first voxel, direction columns = row, column, slice axes).
#include <itkImage.h>

#include <string>
#include <vector>

#include "sagitta/core/image.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/series_info.h"

namespace sagitta::dicom {

using sagitta::Image;

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

template <typename TPixel>
struct LoadedSeriesOf {
  using ImageType = itk::Image<TPixel, 3>;
  // One volume per time point / repetition; a plain 3D series has exactly one.
  std::vector<typename ImageType::Pointer> volumes;
  SeriesInfo info;
  std::vector<Decision> decisions;  // spacing, tilt, multi-volume, inversion... decisions
};
using LoadedSeries = LoadedSeriesOf<float>;

// Loads one stack as float (rescaled units: HU, Gy...). Throws DicomError for unreadable pixel
// data, inconsistent geometry or irregular spacing (unless options allow resampling).
LoadedSeries load(const Stack& stack, const LoadOptions& options = {});

// Integer pixel types that can hold a stack's values exactly.
enum class IntegerType { None, Int16, UInt16, Int32 };

// The narrowest integer type that holds every value of the stack exactly, decided from its
// headers (stored bits and sign, integral rescale slope and intercept, no resampling needed);
// None when only float is exact.
IntegerType exact_integer_type(const Stack& stack, const LoadOptions& options = {});

// The narrowest integer type that holds the stack's stored values (before rescale), when the
// rescale is integral and no resampling is needed; None otherwise. The rescaled values usually fit
// it too (CT: 16 signed stored bits, intercept -1024, actual values -1024..3071), which only the
// pixel data can tell.
IntegerType stored_integer_type(const Stack& stack, const LoadOptions& options = {});

// Loads one stack in an integer type (half the memory of float for 16-bit data). Throws
// DicomError when `TPixel` holds neither every value the headers allow (exact_integer_type) nor
// the stored values, or when an actual rescaled value does not fit.
// Instantiated for std::int16_t, std::uint16_t, std::int32_t and float.
template <typename TPixel>
LoadedSeriesOf<TPixel> load_as(const Stack& stack, const LoadOptions& options = {});

}  // namespace sagitta::dicom

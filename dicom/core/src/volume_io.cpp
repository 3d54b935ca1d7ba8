// Volume files through ITK: NRRD (multi-volume as Slicer sequences), NIfTI, MHA; atomic writes,
// pixel types narrowed only where every value stays exact.
#include "sagitta/core/volume_io.h"

#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <type_traits>
#include <unistd.h>

#include "sagitta/core/atomic_output.h"
#include "sagitta/core/error.h"
#include "sagitta/core/image.h"
#include "nrrd_sequence.h"

namespace sagitta {
namespace fs = std::filesystem;
namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Checks the destination, then writes it atomically (sagitta/core/atomic_output.h): a reader
// never sees a partial file, and a failure leaves nothing behind.
void write_volume_file(const fs::path& out, const std::function<void(const fs::path&)>& write) {
  const std::string name = out.filename().string();
  if (!has_suffix(name, ".nrrd") && !has_suffix(name, ".nii.gz") && !has_suffix(name, ".nii") &&
      !has_suffix(name, ".mha"))
    throw Error(fmt::format("{}: unsupported output format; use .nrrd, .nii.gz, .nii or .mha", out.string()));
  check_output_file(out);
  try {
    write_atomically(out, write);
  } catch (const itk::ExceptionObject& e) {
    throw Error(fmt::format("{}: cannot write ({})", out.string(), one_line(e.GetDescription())));
  } catch (const fs::filesystem_error& e) {
    throw Error(fmt::format("{}: cannot write ({})", out.string(), e.code().message()));
  }
}

template <typename TImage>
void write_image(TImage* image, const fs::path& path, bool compress) {
  auto writer = itk::ImageFileWriter<TImage>::New();
  writer->SetFileName(path.string());
  writer->SetInput(image);
  writer->SetUseCompression(compress || has_suffix(path.string(), ".gz"));
  writer->Update();
}

template <typename TOut, typename TIn>
TOut cast_pixel(TIn v) {
  if constexpr (std::is_floating_point_v<TIn> && !std::is_floating_point_v<TOut>)
    return static_cast<TOut>(std::nearbyint(v));
  else
    return static_cast<TOut>(v);
}

// Converts n floats to T front to back inside the same buffer. Safe because T is no wider than
// float: element i is written at or before the bytes of float i, which has already been read.
// memcpy keeps the type punning well defined.
template <typename T>
T* convert_in_place(float* buffer, std::size_t n) {
  static_assert(sizeof(T) <= sizeof(float));
  auto* bytes = reinterpret_cast<unsigned char*>(buffer);
  for (std::size_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, bytes + i * sizeof(float), sizeof v);
    const T t = cast_pixel<T>(v);
    std::memcpy(bytes + i * sizeof(T), &t, sizeof t);
  }
  return reinterpret_cast<T*>(buffer);
}

// Writes volumes of pixel type TIn as TOut: 3D for one volume; several as a NRRD sequence (list
// axis first, as Slicer loads it) or a 4D image for other formats (4th axis = volume index).
template <typename TOut, typename TIn>
void write_as(const std::vector<typename itk::Image<TIn, 3>::Pointer>& volumes, const fs::path& path, bool compress,
              bool consume) {
  const auto* first = volumes.front().GetPointer();
  const std::size_t n = first->GetLargestPossibleRegion().GetNumberOfPixels();
  if (volumes.size() == 1) {
    using Out = itk::Image<TOut, 3>;
    if constexpr (std::is_same_v<TIn, TOut>) {
      write_image(const_cast<Out*>(first), path, compress);
    } else {
      auto out = Out::New();
      out->SetRegions(first->GetLargestPossibleRegion());
      out->CopyInformation(first);
      if constexpr (std::is_same_v<TIn, float> && sizeof(TOut) <= sizeof(float)) {
        if (consume) {
          TOut* data = convert_in_place<TOut>(const_cast<float*>(first->GetBufferPointer()), n);
          out->GetPixelContainer()->SetImportPointer(data, n, false);
          write_image(out.GetPointer(), path, compress);
          return;
        }
      }
      allocate_huge(out.GetPointer());
      std::transform(first->GetBufferPointer(), first->GetBufferPointer() + n, out->GetBufferPointer(),
                     cast_pixel<TOut, TIn>);
      write_image(out.GetPointer(), path, compress);
    }
    return;
  }
  if (has_suffix(path.string(), ".nrrd")) {
    std::vector<typename itk::Image<TOut, 3>::Pointer> converted;
    for (const auto& v : volumes) {
      if constexpr (std::is_same_v<TIn, TOut>) {
        converted.push_back(v);
      } else {
        auto c = itk::Image<TOut, 3>::New();
        c->SetRegions(v->GetLargestPossibleRegion());
        c->CopyInformation(v);
        allocate_huge(c.GetPointer());
        std::transform(v->GetBufferPointer(), v->GetBufferPointer() + n, c->GetBufferPointer(), cast_pixel<TOut, TIn>);
        converted.push_back(c);
      }
    }
    detail::write_nrrd_sequence<TOut>(converted, path, compress);
    return;
  }
  using Out = itk::Image<TOut, 4>;
  auto out = Out::New();
  typename Out::SizeType size;
  typename Out::SpacingType spacing;
  typename Out::PointType origin;
  typename Out::DirectionType direction;
  direction.SetIdentity();
  for (int i = 0; i < 3; ++i) {
    size[i] = first->GetLargestPossibleRegion().GetSize()[i];
    spacing[i] = first->GetSpacing()[i];
    origin[i] = first->GetOrigin()[i];
    for (int j = 0; j < 3; ++j) direction[i][j] = first->GetDirection()[i][j];
  }
  size[3] = volumes.size();
  spacing[3] = 1.0;
  origin[3] = 0.0;
  out->SetRegions(size);
  out->SetSpacing(spacing);
  out->SetOrigin(origin);
  out->SetDirection(direction);
  allocate_huge(out.GetPointer());
  TOut* dst = out->GetBufferPointer();
  for (const auto& v : volumes) {
    if (v->GetLargestPossibleRegion() != first->GetLargestPossibleRegion())
      throw Error("volumes of one series differ in size; cannot write them as one 4D image");
    dst = std::transform(v->GetBufferPointer(), v->GetBufferPointer() + n, dst, cast_pixel<TOut, TIn>);
  }
  write_image(out.GetPointer(), path, compress);
}

enum class Scalar { Float, Int16, UInt16, Int32 };

// The narrowest integer type that holds every value exactly, else float.
Scalar narrowest(const std::vector<Image::Pointer>& volumes) {
  double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
  for (const auto& v : volumes) {
    const float* p = v->GetBufferPointer();
    const std::size_t n = v->GetLargestPossibleRegion().GetNumberOfPixels();
    for (std::size_t i = 0; i < n; ++i) {
      if (p[i] != std::nearbyint(p[i])) return Scalar::Float;  // also NaN
      lo = std::min<double>(lo, p[i]);
      hi = std::max<double>(hi, p[i]);
    }
  }
  if (lo >= -32768 && hi <= 32767) return Scalar::Int16;
  if (lo >= 0 && hi <= 65535) return Scalar::UInt16;
  if (lo >= -2147483648.0 && hi <= 2147483647.0) return Scalar::Int32;
  return Scalar::Float;
}

}  // namespace

void write_volumes(const std::vector<Image::Pointer>& volumes, const fs::path& out, const WriteOptions& options) {
  if (volumes.empty()) throw Error("nothing to write");
  write_volume_file(out, [&](const fs::path& tmp) {
    const Scalar scalar = options.pixel_type == OutputPixelType::Float ? Scalar::Float : narrowest(volumes);
    const bool consume = options.consume_input;
    switch (scalar) {
      case Scalar::Float: write_as<float, float>(volumes, tmp, options.compress, consume); break;
      case Scalar::Int16: write_as<std::int16_t, float>(volumes, tmp, options.compress, consume); break;
      case Scalar::UInt16: write_as<std::uint16_t, float>(volumes, tmp, options.compress, consume); break;
      case Scalar::Int32: write_as<std::int32_t, float>(volumes, tmp, options.compress, consume); break;
    }
  });
}

template <typename TPixel>
void write_volumes_as(const std::vector<typename itk::Image<TPixel, 3>::Pointer>& volumes, const fs::path& out,
                      bool compress) {
  if (volumes.empty()) throw Error("nothing to write");
  write_volume_file(out, [&](const fs::path& tmp) { write_as<TPixel, TPixel>(volumes, tmp, compress, false); });
}

template void write_volumes_as<float>(const std::vector<itk::Image<float, 3>::Pointer>&, const fs::path&, bool);
template void write_volumes_as<std::int16_t>(const std::vector<itk::Image<std::int16_t, 3>::Pointer>&,
                                             const fs::path&, bool);
template void write_volumes_as<std::uint16_t>(const std::vector<itk::Image<std::uint16_t, 3>::Pointer>&,
                                              const fs::path&, bool);
template void write_volumes_as<std::int32_t>(const std::vector<itk::Image<std::int32_t, 3>::Pointer>&,
                                             const fs::path&, bool);

namespace {

// ITK 5.2's NIfTI reader aborts the process (vnl's assert_finite) on a header whose orientation
// holds NaN or infinity; found by fuzz_volume. Such headers are refused before ITK sees them.
// Reads the first 540 bytes (gzread reads .nii and .nii.gz alike) and checks every float of the
// NIfTI-1 (348-byte) or NIfTI-2 (540-byte) header that geometry is made of.
void check_nifti_header(const fs::path& path) {
  const std::string name = path.filename().string();
  const bool nifti = name.size() > 4 && (name.substr(name.size() - 4) == ".nii" ||
                                         (name.size() > 7 && name.substr(name.size() - 7) == ".nii.gz"));
  if (!nifti) return;
  unsigned char h[540] = {};
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) return;  // ITK reports it
  const int got = gzread(f, h, sizeof h);
  gzclose(f);
  if (got < 348) return;
  auto u32 = [&](int at, bool swap) {
    std::uint32_t v;
    std::memcpy(&v, h + at, 4);
    return swap ? __builtin_bswap32(v) : v;
  };
  bool swap = false, two = false;
  if (u32(0, false) == 348) swap = false;
  else if (u32(0, true) == 348) swap = true;
  else if (u32(0, false) == 540 && got >= 540) two = true;
  else if (u32(0, true) == 540 && got >= 540) swap = two = true;
  else return;  // not NIfTI: ITK decides
  bool finite = true;
  auto check_float = [&](int at) {
    const std::uint32_t bits = u32(at, swap);
    float v;
    std::memcpy(&v, &bits, 4);
    finite &= std::isfinite(v);
  };
  auto check_double = [&](int at) {
    std::uint64_t bits;
    std::memcpy(&bits, h + at, 8);
    if (swap) bits = __builtin_bswap64(bits);
    double v;
    std::memcpy(&v, &bits, 8);
    finite &= std::isfinite(v);
  };
  if (!two) {
    for (int i = 0; i < 8; ++i) check_float(76 + 4 * i);     // pixdim
    for (int i = 0; i < 18; ++i) check_float(256 + 4 * i);   // quatern_b..qoffset_z, srow_x/y/z
  } else {
    for (int i = 0; i < 8; ++i) check_double(104 + 8 * i);   // pixdim
    for (int i = 0; i < 18; ++i) check_double(352 + 8 * i);  // quatern_b..qoffset_z, srow_x/y/z
  }
  if (!finite)
    throw Error(fmt::format("{}: the NIfTI header's spacing or orientation holds NaN or infinity; not a usable volume",
                            path.string()));
}

}  // namespace

Image::Pointer read_volume(const fs::path& path) {
  check_nifti_header(path);
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw Error(fmt::format("{}: cannot read as a volume ({})", path.string(), one_line(e.GetDescription())));
  }
  return reader->GetOutput();
}

}  // namespace sagitta

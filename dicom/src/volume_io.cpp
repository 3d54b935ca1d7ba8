#include "sagitta/dicom/volume_io.h"

#include <itkImageFileReader.h>
#include <itkImageFileWriter.h>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <unistd.h>

#include "sagitta/dicom/error.h"
#include "sagitta/dicom/image_memory.h"

namespace sagitta::dicom {
namespace fs = std::filesystem;
namespace {

enum class Scalar { Float, Int16, UInt16, Int32 };

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_format(const fs::path& out) {
  const std::string name = out.filename().string();
  for (const char* ext : {".nrrd", ".nii.gz", ".nii", ".mha"})
    if (has_suffix(name, ext)) return;
  throw DicomError(fmt::format("{}: unsupported output format; use .nrrd, .nii.gz, .nii or .mha", out.string()));
}

Scalar choose_scalar(const std::vector<Image::Pointer>& volumes, const WriteOptions& options,
                     const LoadedSeries* source) {
  if (options.pixel_type == OutputPixelType::Float) return Scalar::Float;
  double lo = std::numeric_limits<double>::max(), hi = std::numeric_limits<double>::lowest();
  bool integral = true;
  for (const auto& v : volumes) {
    const float* p = v->GetBufferPointer();
    const std::size_t n = v->GetPixelContainer()->Size();
    for (std::size_t i = 0; i < n; ++i) {
      lo = std::min<double>(lo, p[i]);
      hi = std::max<double>(hi, p[i]);
      if (integral && p[i] != std::nearbyint(p[i])) integral = false;
    }
  }
  auto fits = [&](double a, double b) { return lo >= a && hi <= b; };
  if (options.pixel_type == OutputPixelType::Stored) {
    if (!source) throw DicomError("the stored pixel type needs the DICOM source of the volume");
    if (!integral)
      throw DicomError("rescale slope/intercept make the values non-integer; the stored type would lose "
                       "them: write float (--type float) or let Sagitta choose (--type auto)");
    Scalar s = source->bits_allocated > 16 ? Scalar::Int32 : source->pixel_signed ? Scalar::Int16 : Scalar::UInt16;
    if (source->bits_allocated <= 8) s = Scalar::Int16;
    const bool ok = s == Scalar::Int16 ? fits(-32768, 32767) : s == Scalar::UInt16 ? fits(0, 65535) : fits(-2147483648.0, 2147483647.0);
    if (!ok)
      throw DicomError(fmt::format("rescaled values {}..{} do not fit the stored type; use --type auto or float", lo, hi));
    return s;
  }
  if (!integral) return Scalar::Float;
  if (fits(-32768, 32767)) return Scalar::Int16;
  if (fits(0, 65535)) return Scalar::UInt16;
  if (fits(-2147483648.0, 2147483647.0)) return Scalar::Int32;
  return Scalar::Float;
}

template <typename TImage>
void write_image(TImage* image, const fs::path& path, bool compress) {
  auto writer = itk::ImageFileWriter<TImage>::New();
  writer->SetFileName(path.string());
  writer->SetInput(image);
  writer->SetUseCompression(compress || has_suffix(path.string(), ".gz"));
  writer->Update();
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
    const T t = static_cast<T>(std::nearbyint(v));
    std::memcpy(bytes + i * sizeof(T), &t, sizeof t);
  }
  return reinterpret_cast<T*>(buffer);
}

template <typename T>
void write_as(const std::vector<Image::Pointer>& volumes, const fs::path& path, bool compress, bool consume) {
  const Image* first = volumes.front().GetPointer();
  if (volumes.size() == 1) {
    if constexpr (std::is_same_v<T, float>) {
      write_image(const_cast<Image*>(first), path, compress);
    } else if (consume) {
      using Out = itk::Image<T, 3>;
      auto out = Out::New();
      out->SetRegions(first->GetLargestPossibleRegion());
      out->CopyInformation(first);
      const std::size_t n = first->GetPixelContainer()->Size();
      T* data = convert_in_place<T>(const_cast<float*>(first->GetBufferPointer()), n);
      out->GetPixelContainer()->SetImportPointer(data, n, false);
      write_image(out.GetPointer(), path, compress);
    } else {
      using Out = itk::Image<T, 3>;
      auto out = Out::New();
      out->SetRegions(first->GetLargestPossibleRegion());
      out->CopyInformation(first);
      allocate_huge(out.GetPointer());
      std::transform(first->GetBufferPointer(), first->GetBufferPointer() + first->GetPixelContainer()->Size(),
                     out->GetBufferPointer(), [](float v) { return static_cast<T>(std::nearbyint(v)); });
      write_image(out.GetPointer(), path, compress);
    }
    return;
  }
  // Several time points: a 4D image whose 4th axis is the volume index.
  using Out = itk::Image<T, 4>;
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
  T* dst = out->GetBufferPointer();
  for (const auto& v : volumes) {
    const std::size_t n = v->GetPixelContainer()->Size();
    if constexpr (std::is_same_v<T, float>)
      std::copy_n(v->GetBufferPointer(), n, dst);
    else
      std::transform(v->GetBufferPointer(), v->GetBufferPointer() + n, dst,
                     [](float x) { return static_cast<T>(std::nearbyint(x)); });
    dst += n;
  }
  write_image(out.GetPointer(), path, compress);
}

}  // namespace

void write_volumes(const std::vector<Image::Pointer>& volumes, const fs::path& out, const WriteOptions& options,
                   const LoadedSeries* source) {
  if (volumes.empty()) throw DicomError("nothing to write");
  check_format(out);
  for (const auto& v : volumes)
    if (v->GetLargestPossibleRegion() != volumes.front()->GetLargestPossibleRegion())
      throw DicomError("volumes of one series differ in size; cannot write them as one 4D image");
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw DicomError(fmt::format("{}: the output folder {} does not exist", out.string(), dir.string()));
  if (::access(dir.c_str(), W_OK) != 0)
    throw DicomError(fmt::format("{}: the output folder {} is not writable", out.string(), dir.string()));
  if (fs::is_directory(out, ec)) throw DicomError(fmt::format("{}: is a folder, not a file name", out.string()));

  const Scalar scalar = choose_scalar(volumes, options, source);
  // Write under a temporary name with the same extension (ITK chooses the format by it), then
  // rename: a reader never sees a partial file, and a failure leaves nothing behind.
  const fs::path tmp = dir / fmt::format(".{}.partial-{}-{}", out.filename().stem().string(), ::getpid(),
                                         out.filename().string());
  try {
    switch (scalar) {
      case Scalar::Float: write_as<float>(volumes, tmp, options.compress, options.consume_input); break;
      case Scalar::Int16: write_as<std::int16_t>(volumes, tmp, options.compress, options.consume_input); break;
      case Scalar::UInt16: write_as<std::uint16_t>(volumes, tmp, options.compress, options.consume_input); break;
      case Scalar::Int32: write_as<std::int32_t>(volumes, tmp, options.compress, options.consume_input); break;
    }
    fs::rename(tmp, out);
  } catch (const itk::ExceptionObject& e) {
    fs::remove(tmp, ec);
    throw DicomError(fmt::format("{}: cannot write ({})", out.string(), one_line(e.GetDescription())));
  } catch (const fs::filesystem_error& e) {
    fs::remove(tmp, ec);
    throw DicomError(fmt::format("{}: cannot write ({})", out.string(), e.code().message()));
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
}

Image::Pointer read_volume(const fs::path& path) {
  auto reader = itk::ImageFileReader<Image>::New();
  reader->SetFileName(path.string());
  try {
    reader->Update();
  } catch (const itk::ExceptionObject& e) {
    throw DicomError(fmt::format("{}: cannot read as a volume ({})", path.string(), one_line(e.GetDescription())));
  }
  return reader->GetOutput();
}

}  // namespace sagitta::dicom

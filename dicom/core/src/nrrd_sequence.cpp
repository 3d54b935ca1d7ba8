// Multi-volume NRRD files in 3D Slicer's sequence layout, written with teem's NrrdIO (see nrrd_sequence.h).
#include "nrrd_sequence.h"

#include <NrrdIO.h>
#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>

#include "sagitta/core/error.h"
#include "sagitta/core/image.h"

namespace sagitta::detail {
namespace {

template <typename T> constexpr int nrrd_type();
template <> constexpr int nrrd_type<float>() { return nrrdTypeFloat; }
template <> constexpr int nrrd_type<std::int16_t>() { return nrrdTypeShort; }
template <> constexpr int nrrd_type<std::uint16_t>() { return nrrdTypeUShort; }
template <> constexpr int nrrd_type<std::int32_t>() { return nrrdTypeInt; }

std::string biff_message() {
  char* err = biffGetDone(NRRD);
  std::string message = err ? err : "unknown NrrdIO error";
  std::free(err);
  for (char& c : message)
    if (c == '\n') c = ' ';
  return message;
}

}  // namespace

template <typename TPixel>
void write_nrrd_sequence(const std::vector<typename itk::Image<TPixel, 3>::Pointer>& volumes,
                         const std::filesystem::path& path, bool compress) {
  const auto& first = *volumes.front();
  const auto size = first.GetLargestPossibleRegion().GetSize();
  const std::size_t voxels = first.GetLargestPossibleRegion().GetNumberOfPixels();
  const std::size_t t_count = volumes.size();

  // Interleave: time is the fastest axis.
  using Buffer = itk::Image<TPixel, 1>;
  auto buffer = Buffer::New();
  typename Buffer::SizeType bsize;
  bsize[0] = voxels * t_count;
  buffer->SetRegions(bsize);
  allocate_huge(buffer.GetPointer());
  TPixel* out = buffer->GetBufferPointer();
  for (std::size_t t = 0; t < t_count; ++t) {
    if (volumes[t]->GetLargestPossibleRegion() != first.GetLargestPossibleRegion())
      throw Error("volumes of one series differ in size; cannot write them as one sequence");
    const TPixel* in = volumes[t]->GetBufferPointer();
    for (std::size_t i = 0; i < voxels; ++i) out[i * t_count + t] = in[i];
  }

  std::unique_ptr<Nrrd, Nrrd* (*)(Nrrd*)> nrrd(nrrdNew(), nrrdNix);  // nix: the data is ours
  std::unique_ptr<NrrdIoState, NrrdIoState* (*)(NrrdIoState*)> io(nrrdIoStateNew(), nrrdIoStateNix);
  const size_t sizes[4] = {t_count, size[0], size[1], size[2]};
  if (nrrdWrap_nva(nrrd.get(), out, nrrd_type<TPixel>(), 4, sizes) != 0 ||
      nrrdSpaceSet(nrrd.get(), nrrdSpaceLeftPosteriorSuperior) != 0)
    throw Error(fmt::format("{}: cannot describe the NRRD ({})", path.string(), biff_message()));
  double origin[3];
  for (int i = 0; i < 3; ++i) origin[i] = first.GetOrigin()[i];
  nrrdSpaceOriginSet(nrrd.get(), origin);
  nrrd->axis[0].kind = nrrdKindList;
  for (int j = 0; j < 3; ++j) nrrd->axis[0].spaceDirection[j] = AIR_NAN;
  for (int a = 0; a < 3; ++a) {
    nrrd->axis[a + 1].kind = nrrdKindDomain;
    for (int j = 0; j < 3; ++j) nrrd->axis[a + 1].spaceDirection[j] = first.GetDirection()[j][a] * first.GetSpacing()[a];
  }
  io->encoding = compress ? nrrdEncodingGzip : nrrdEncodingRaw;
  if (nrrdSave(path.c_str(), nrrd.get(), io.get()) != 0)
    throw Error(fmt::format("{}: cannot write ({})", path.string(), biff_message()));
}

template void write_nrrd_sequence<float>(const std::vector<itk::Image<float, 3>::Pointer>&, const std::filesystem::path&, bool);
template void write_nrrd_sequence<std::int16_t>(const std::vector<itk::Image<std::int16_t, 3>::Pointer>&,
                                                const std::filesystem::path&, bool);
template void write_nrrd_sequence<std::uint16_t>(const std::vector<itk::Image<std::uint16_t, 3>::Pointer>&,
                                                 const std::filesystem::path&, bool);
template void write_nrrd_sequence<std::int32_t>(const std::vector<itk::Image<std::int32_t, 3>::Pointer>&,
                                                const std::filesystem::path&, bool);

}  // namespace sagitta::detail

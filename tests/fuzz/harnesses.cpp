// Sagitta's fuzz harness bodies (the declarations and their contract: harnesses.h).
#include "harnesses.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "http.h"
#include "j2k_codestream.h"
#include "multipart.h"
#include "sagitta/core/error.h"
#include "sagitta/core/volume_io.h"
#include "sagitta/dicom/error.h"
#include "sagitta/dicom/load.h"
#include "sagitta/dicom/report_json.h"
#include "sagitta/dicom/rtstruct.h"
#include "sagitta/dicom/scan.h"
#include "sagitta/dicom/seg.h"
#include "sagitta/dicom/text.h"

namespace sagitta::fuzz {
namespace fs = std::filesystem;
namespace {

// A private folder in memory-backed /dev/shm when there is one, holding one input at a time.
const fs::path& work_dir() {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("sagitta-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(work_dir(), ec);
    });
    return d;
  }();
  return dir;
}

fs::path write_input(const std::uint8_t* data, std::size_t size, const std::string& name) {
  const fs::path p = work_dir() / name;
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(data),
                                                             static_cast<std::streamsize>(size));
  return p;
}

dicom::ScanOptions one_thread() {
  dicom::ScanOptions o;
  o.threads = 1;
  return o;
}

}  // namespace

int header(const std::uint8_t* data, std::size_t size) {
  const fs::path p = write_input(data, size, "in.dcm");
  try {
    const auto scan = dicom::scan({p}, one_thread());
    (void)dicom::to_json(scan).dump();  // strict: throws on invalid UTF-8
  } catch (const sagitta::Error&) {
  }
  return 0;
}

int pixels(const std::uint8_t* data, std::size_t size) {
  const fs::path p = write_input(data, size, "in.dcm");
  try {
    const auto scan = dicom::scan({p}, one_thread());
    for (const auto& stack : scan.stacks) {
      dicom::LoadOptions o;
      o.threads = 1;
      try {
        (void)dicom::load(stack, o);
      } catch (const sagitta::Error&) {
      }
    }
  } catch (const sagitta::Error&) {
  }
  return 0;
}

int j2k(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  // The pixel description a DICOM header would give, from the first 8 bytes.
  dicom::detail::j2k::PixelInfo info;
  info.rows = static_cast<Uint16>(1 + (data[0] | data[1] << 8) % 2048);
  info.columns = static_cast<Uint16>(1 + (data[2] | data[3] << 8) % 2048);
  info.samples_per_pixel = data[4] % 2 ? 3 : 1;
  info.bits_allocated = data[5] % 2 ? 16 : 8;
  info.bits_stored = static_cast<Uint16>(1 + data[6] % info.bits_allocated);
  info.pixel_representation = data[7] % 2;
  info.photometric = info.samples_per_pixel == 3 ? "RGB" : "MONOCHROME2";
  std::vector<Uint8> out(info.frame_bytes());
  (void)dicom::detail::j2k::decode_codestream(data + 8, size - 8, info, 0, out.data());
  return 0;
}

int seg(const std::uint8_t* data, std::size_t size) {
  const fs::path p = write_input(data, size, "in.dcm");
  try {
    (void)dicom::read_seg(p);
  } catch (const sagitta::Error&) {
  }
  return 0;
}

int rtstruct(const std::uint8_t* data, std::size_t size) {
  // A fixed reference grid: 1 mm voxels over ±64 mm in-plane, 2 mm slices over ±32 mm.
  static const auto grid = [] {
    auto g = dicom::LabelMap::New();
    dicom::LabelMap::SizeType n{{128, 128, 32}};
    g->SetRegions(n);
    const double spacing[3] = {1.0, 1.0, 2.0}, origin[3] = {-64.0, -64.0, -32.0};
    g->SetSpacing(spacing);
    g->SetOrigin(origin);
    return g;
  }();
  const fs::path p = write_input(data, size, "in.dcm");
  try {
    if (dicom::is_rtstruct_file(p)) (void)dicom::read_rtstruct(p, *grid);
  } catch (const sagitta::Error&) {
  }
  return 0;
}

int volume(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* names[] = {"in.nrrd", "in.nii", "in.nii.gz", "in.mha"};
  const fs::path p = write_input(data + 1, size - 1, names[data[0] % 4]);
  try {
    (void)sagitta::read_volume(p);
  } catch (const sagitta::Error&) {
  } catch (const itk::ExceptionObject&) {  // ITK's readers report bad files this way
  }
  return 0;
}

int text(const std::uint8_t* data, std::size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const auto zero = in.find('\0');
  const std::string charset = zero == std::string::npos ? "" : in.substr(0, zero);
  const std::string value = zero == std::string::npos ? in : in.substr(zero + 1);
  const std::string out = dicom::to_utf8(value, charset);
  if (dicom::valid_utf8(out) != out) std::abort();
  return 0;
}

int multipart(const std::uint8_t* data, std::size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const std::size_t nl = std::min(in.find('\n'), in.size());
  const std::string content_type = in.substr(0, std::min<std::size_t>(nl, 300));
  const std::string body = nl < in.size() ? in.substr(nl + 1) : std::string();
  std::string boundary = dicom::detail::header_parameter(content_type, "boundary");
  (void)dicom::detail::media_type(content_type);
  if (boundary.empty()) boundary = "b";
  std::size_t handed = 0, begun = 0, ended = 0;
  dicom::detail::MultipartReader::Handlers h;
  h.begin = [&](std::size_t, const dicom::detail::MultipartReader::Headers&) { ++begun; };
  h.data = [&](const char*, std::size_t n) { handed += n; };
  h.end = [&](std::size_t) { ++ended; };
  try {
    dicom::detail::MultipartReader reader(boundary, h);
    const std::size_t chunk = body.empty() ? 1 : static_cast<unsigned char>(body[0]) % 64 + 1;
    for (std::size_t i = 0; i < body.size(); i += chunk) reader.feed(body.data() + i, std::min(chunk, body.size() - i));
    reader.finish();
    if (reader.parts() != ended || begun != ended) std::abort();
  } catch (const dicom::DicomError&) {
  }
  if (handed > body.size() || ended > begun) std::abort();
  return 0;
}

const std::vector<Entry>& harnesses() {
  static const std::vector<Entry> all = {{"header", header}, {"pixels", pixels}, {"j2k", j2k},   {"seg", seg},
                                         {"volume", volume}, {"text", text},     {"multipart", multipart},
                                         {"rtstruct", rtstruct}};
  return all;
}

}  // namespace sagitta::fuzz

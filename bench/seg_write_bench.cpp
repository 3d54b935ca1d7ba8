// Writes a DICOM SEG for a 512x512x300 label map with 10 labels (organ-like ellipsoids), or the
// same label map as NRRD (the peer), or reads the SEG back; prints seconds and peak RSS. One
// mode per process so that each peak RSS is its own: run through bench/seg_write.sh.
//   seg_write_bench seg|nrrd|nrrd-gz|read OUT_DIR
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "sagitta/dicom/seg.h"
#include "sagitta/core/volume_io.h"

namespace fs = std::filesystem;
namespace dcm = sagitta::dicom;

namespace {

constexpr int kSize[3] = {512, 512, 300};

dcm::LabelMap::Pointer make_labels() {
  auto l = dcm::LabelMap::New();
  dcm::LabelMap::RegionType region;
  region.SetSize({{kSize[0], kSize[1], kSize[2]}});
  l->SetRegions(region);
  dcm::LabelMap::SpacingType sp;
  sp[0] = sp[1] = 0.8;
  sp[2] = 1.5;
  l->SetSpacing(sp);
  dcm::LabelMap::PointType o;
  o[0] = -204.8;
  o[1] = -204.8;
  o[2] = -400.0;
  l->SetOrigin(o);
  l->Allocate(true);
  // Ten ellipsoids of organ-like sizes at different heights: each label covers 15-60% of the
  // slices, as abdominal organs do.
  std::uint16_t* v = l->GetBufferPointer();
  for (int label = 1; label <= 10; ++label) {
    const double cx = 130 + 25 * label, cy = 180 + 15 * (label % 4), cz = 30 + 22 * label;
    const double rx = 30 + 4 * label, ry = 25 + 3 * (label % 5), rz = 25 + 6 * label;
    for (int z = 0; z < kSize[2]; ++z)
      for (int y = 0; y < kSize[1]; ++y)
        for (int x = 0; x < kSize[0]; ++x) {
          const double d = std::pow((x - cx) / rx, 2) + std::pow((y - cy) / ry, 2) + std::pow((z - cz) / rz, 2);
          if (d <= 1.0) v[(static_cast<std::size_t>(z) * kSize[1] + y) * kSize[0] + x] = static_cast<std::uint16_t>(label);
        }
  }
  return l;
}

dcm::SeriesInfo source_info() {
  dcm::SeriesInfo info;
  info.patient_name = "Bench^Phantom";
  info.patient_id = "BENCH1";
  info.study_instance_uid = "1.2.826.0.1.3680043.8.498.1";
  info.series_instance_uid = "1.2.826.0.1.3680043.8.498.2";
  info.frame_of_reference_uid = "1.2.826.0.1.3680043.8.498.3";
  info.series_number = "2";
  info.modality = "CT";
  info.slices.resize(1);
  for (int k = 0; k < kSize[2]; ++k)
    info.slices[0].push_back({"1.2.826.0.1.3680043.8.498.10." + std::to_string(k + 1), "1.2.840.10008.5.1.4.1.1.2", 0, ""});
  return info;
}

// CPU seconds (user + system) used by this process so far: on a shared machine the wall time
// depends on the load, the CPU time much less.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long peak_rss_kib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: seg_write_bench seg|nrrd|nrrd-gz|read OUT_DIR\n");
    return 2;
  }
  const std::string mode = argv[1];
  const fs::path dir = argv[2];
  fs::create_directories(dir);
  const auto labels = make_labels();
  const long rss_before = peak_rss_kib();
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = cpu_seconds();
  std::size_t frames = 0;
  fs::path out;
  if (mode == "seg") {
    std::vector<dcm::SegmentDescription> segments;
    for (int l = 1; l <= 10; ++l) segments.push_back({l, "organ " + std::to_string(l), {20 * l, 200, 255 - 20 * l}, {}, {}});
    out = dir / "seg.dcm";
    frames = dcm::write_seg(*labels, *labels, source_info(), segments, out).frames;
  } else if (mode == "nrrd" || mode == "nrrd-gz") {
    out = dir / (mode == "nrrd" ? "labels.nrrd" : "labels-gz.nrrd");
    sagitta::write_volumes_as<std::uint16_t>({labels}, out, mode == "nrrd-gz");
  } else if (mode == "read") {
    out = dir / "seg.dcm";
    const auto r = dcm::read_seg(out);
    frames = r.segments.size();
  } else {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = cpu_seconds() - cpu0;
  std::printf("%s seconds %.3f cpu_seconds %.3f peak_rss_mib %.1f rss_before_mib %.1f file_mib %.1f frames %zu\n", mode.c_str(), seconds, cpu,
              peak_rss_kib() / 1024.0, rss_before / 1024.0, fs::file_size(out) / 1048576.0, frames);
  return 0;
}

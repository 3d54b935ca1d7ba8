// Writes the demo CT series that Sagitta ships in testdata/demo/ct_phantom/:
// a 64 x 64 x 40 int16 CT phantom (0.8 x 0.8 mm pixels, 2.5 mm slices, RescaleIntercept -1024)
// with an ellipsoid "body" of soft tissue (40 HU), a brighter spherical "organ" (150 HU) and a
// small dense "bone" (700 HU) in air (-1000 HU).
//
// Usage: sagitta_make_demo_series <output folder>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <string>
#include <system_error>

#include "support/synthetic_dicom.h"

namespace fs = std::filesystem;
using sagitta::testing::Marker;
using sagitta::testing::SeriesSpec;

namespace {

constexpr const char* kPrefix = "ct_phantom";

SeriesSpec demo_spec() {
  SeriesSpec spec;
  spec.rows = 64;
  spec.columns = 64;
  spec.slices = 40;
  spec.pixel_spacing = {0.8, 0.8};
  spec.slice_spacing = 2.5;
  spec.orientation = {1, 0, 0, 0, 1, 0};
  // Centred on the origin: voxel centres from -25.2 to 25.2 mm in-plane, -48.75 to 48.75 mm
  // from feet to head.
  spec.first_position = {-25.2, -25.2, -48.75};
  spec.modality = "CT";
  spec.pixel_signed = true;
  spec.bits_allocated = 16;
  spec.bits_stored = 16;
  spec.rescale_slope = 1.0;
  spec.rescale_intercept = -1024.0;
  spec.background = -1000.0;  // air

  Marker body;  // soft tissue, an ellipsoid wider than deep, long from head to feet
  body.lps = {0, 0, 0};
  body.semi_axes = {22, 17, 44};
  body.value = 40;
  Marker organ;  // an enhancing organ on the patient's left, anterior
  organ.lps = {7, -4, 8};
  organ.radius = 8;
  organ.value = 150;
  Marker bone;  // a small dense bone, posterior
  bone.lps = {-3, 10, -6};
  bone.semi_axes = {3.5, 3.5, 14};
  bone.value = 700;
  spec.markers = {body, organ, bone};  // later markers paint over earlier ones

  spec.patient_name = "Sagitta^Demo";
  spec.patient_id = "SAGITTA-DEMO";
  spec.study_description = "Sagitta demo phantom";
  spec.series_description = "CT phantom: body, organ, bone";
  spec.series_number = 2;
  spec.image_type = "ORIGINAL\\PRIMARY\\AXIAL";
  spec.file_prefix = kPrefix;
  return spec;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fprintf(stderr, "usage: %s <output folder>\nWrites Sagitta's demo CT phantom series.\n",
                 argv[0]);
    return argc == 2 ? 0 : 2;
  }
  try {
    const fs::path folder = argv[1];
    fs::create_directories(folder);
    // Replace an earlier demo series rather than mixing two series' files in one folder.
    for (const auto& entry : fs::directory_iterator(folder)) {
      const std::string name = entry.path().filename().string();
      if (entry.is_regular_file() && name.rfind(std::string(kPrefix) + "_", 0) == 0 &&
          entry.path().extension() == ".dcm")
        fs::remove(entry.path());
    }
    const auto files = sagitta::testing::write_series(demo_spec(), folder);
    std::uintmax_t bytes = 0;
    for (const auto& f : files) bytes += fs::file_size(f);
    std::printf("wrote %zu files (%ju bytes) to %s\n", files.size(), bytes,
                folder.string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sagitta_make_demo_series: %s\n", e.what());
    return 1;
  }
}

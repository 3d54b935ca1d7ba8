// Writes the benchmark's large uncompressed CT series with the test suite's synthetic writer:
//   make_bench_series <folder> [rows columns slices]   (default 512 512 400)
#include <cstdlib>
#include <iostream>

#include "support/synthetic_dicom.h"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 5) {
    std::cerr << "usage: make_bench_series <folder> [rows columns slices]\n";
    return 2;
  }
  sagitta::testing::SeriesSpec spec;
  spec.rows = argc == 5 ? std::atoi(argv[2]) : 512;
  spec.columns = argc == 5 ? std::atoi(argv[3]) : 512;
  spec.slices = argc == 5 ? std::atoi(argv[4]) : 400;
  spec.pixel_spacing = {0.7, 0.7};
  spec.slice_spacing = 1.0;
  spec.first_position = {-179.2, -179.2, -200};
  spec.rescale_intercept = -1024;
  spec.background = -1000;
  spec.markers = {{{0, 0, 0}, 60, 40}, {{30, -20, 50}, 25, 700}};
  spec.series_description = "benchmark CT";
  sagitta::testing::write_series(spec, argv[1]);
  return 0;
}

// Writes the training set of Sagitta's phantom demo model (testdata/models/phantom): N random CT
// phantoms built like the shipped demo series (tests/support/make_demo_series.cpp) — an ellipsoid
// "body" of soft tissue in air, an enhancing spherical "organ" and an elongated dense "bone" — with
// their label maps (1 organ, 2 bone). Sizes, positions and intensities vary from phantom to phantom,
// and half get Gaussian noise, so the model learns the objects rather than one fixed picture.
//
// Usage: sagitta_make_phantom_training_set <output folder> [count=24] [seed=7]
// Writes phantom_<i>_ct.nrrd (int16 HU) and phantom_<i>_labels.nrrd (uint16) on the demo's grid
// (64 x 64 x 40, 0.8 x 0.8 x 2.5 mm, identity direction), and demo_labels.nrrd: the true labels of
// the shipped demo series itself, the held-out test of the model.
#include <itkImage.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>

#include "sagitta/core/volume_io.h"

namespace fs = std::filesystem;

namespace {

using CtImage = itk::Image<std::int16_t, 3>;
using LabelImage = itk::Image<std::uint16_t, 3>;

struct Ellipsoid {
  double c[3];
  double semi[3];
  bool contains(const double p[3]) const {
    double s = 0;
    for (int i = 0; i < 3; ++i) s += ((p[i] - c[i]) / semi[i]) * ((p[i] - c[i]) / semi[i]);
    return s <= 1.0;
  }
};

template <class TImage>
typename TImage::Pointer make_grid() {
  auto image = TImage::New();
  typename TImage::RegionType region;
  region.SetSize({{64, 64, 40}});
  image->SetRegions(region);
  const double spacing[3] = {0.8, 0.8, 2.5};
  image->SetSpacing(spacing);
  const double origin[3] = {-25.2, -25.2, -48.75};
  image->SetOrigin(origin);
  image->Allocate(true);
  return image;
}

// Paints the phantom; noise 0 gives the clean, uniform regions of the DICOM demo series.
void paint(const Ellipsoid& body, const Ellipsoid& organ, const Ellipsoid& bone, const double hu[3], double noise,
           std::mt19937& rng, CtImage& ct, LabelImage& labels) {
  std::normal_distribution<double> n(0.0, 1.0);
  const auto size = ct.GetLargestPossibleRegion().GetSize();
  for (itk::IndexValueType z = 0; z < itk::IndexValueType(size[2]); ++z)
    for (itk::IndexValueType y = 0; y < itk::IndexValueType(size[1]); ++y)
      for (itk::IndexValueType x = 0; x < itk::IndexValueType(size[0]); ++x) {
        const CtImage::IndexType idx{{x, y, z}};
        CtImage::PointType p;
        ct.TransformIndexToPhysicalPoint(idx, p);
        const double q[3] = {p[0], p[1], p[2]};
        double value = -1000;
        std::uint16_t label = 0;
        if (body.contains(q)) value = hu[0];
        // Later objects paint over earlier ones, as in the demo series.
        if (organ.contains(q)) value = hu[1], label = 1;
        if (bone.contains(q)) value = hu[2], label = 2;
        if (noise > 0) value += noise * n(rng);
        ct.SetPixel(idx, static_cast<std::int16_t>(std::lround(value)));
        labels.SetPixel(idx, label);
      }
}

// The demo series' objects (tests/support/make_demo_series.cpp) as labels on its grid.
void write_demo_labels(const fs::path& folder) {
  const Ellipsoid body{{0, 0, 0}, {22, 17, 44}}, organ{{7, -4, 8}, {8, 8, 8}}, bone{{-3, 10, -6}, {3.5, 3.5, 14}};
  const double hu[3] = {40, 150, 700};
  std::mt19937 unused;
  auto ct = make_grid<CtImage>();
  auto labels = make_grid<LabelImage>();
  paint(body, organ, bone, hu, 0.0, unused, *ct, *labels);
  sagitta::write_volumes_as<std::uint16_t>({labels}, folder / "demo_labels.nrrd", true);
}

void write_pair(const fs::path& folder, int index, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto in = [&](double lo, double hi) { return lo + (hi - lo) * u(rng); };

  const Ellipsoid body{{in(-3, 3), in(-3, 3), in(-4, 4)}, {in(17, 24), in(13, 19), in(38, 48)}};
  // The organ and the bone lie inside the body, away from its surface, and apart from each other.
  Ellipsoid organ{}, bone{};
  const double radius = in(5, 11);
  for (int tries = 0;; ++tries) {
    organ = {{body.c[0] + in(-0.45, 0.45) * body.semi[0], body.c[1] + in(-0.45, 0.45) * body.semi[1],
              body.c[2] + in(-0.5, 0.5) * body.semi[2]},
             {radius, radius, radius}};
    bone = {{body.c[0] + in(-0.5, 0.5) * body.semi[0], body.c[1] + in(-0.5, 0.6) * body.semi[1],
             body.c[2] + in(-0.3, 0.3) * body.semi[2]},
            {in(2.5, 4.5), in(2.5, 4.5), in(9, 18)}};
    const double dx = organ.c[0] - bone.c[0], dy = organ.c[1] - bone.c[1];
    if (std::sqrt(dx * dx + dy * dy) > radius + bone.semi[0] + 2 || tries > 100) break;
  }
  const double hu[3] = {in(20, 60), in(120, 190), in(500, 900)};
  const double noise = u(rng) < 0.5 ? 0.0 : in(3, 15);
  auto ct = make_grid<CtImage>();
  auto labels = make_grid<LabelImage>();
  paint(body, organ, bone, hu, noise, rng, *ct, *labels);
  const std::string stem = "phantom_" + std::to_string(index);
  sagitta::write_volumes_as<std::int16_t>({ct}, folder / (stem + "_ct.nrrd"), true);
  sagitta::write_volumes_as<std::uint16_t>({labels}, folder / (stem + "_labels.nrrd"), true);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s <output folder> [count=24] [seed=7]\n", argv[0]);
    return 2;
  }
  try {
    const fs::path folder = argv[1];
    const int count = argc > 2 ? std::stoi(argv[2]) : 24;
    std::mt19937 rng(argc > 3 ? unsigned(std::stoul(argv[3])) : 7u);
    fs::create_directories(folder);
    for (int i = 0; i < count; ++i) write_pair(folder, i, rng);
    write_demo_labels(folder);
    std::printf("wrote %d phantom pairs to %s\n", count, folder.string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sagitta_make_phantom_training_set: %s\n", e.what());
    return 1;
  }
}

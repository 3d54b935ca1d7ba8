// A small 2D U-Net trained inside the test on synthetic phantoms where one object (a bright
// sphere) decides the label: the Grad-CAM family puts >= 80% of the heatmap's mass inside that
// object; a copy of the model with randomised weights gives a map that correlates < 0.5 with the
// trained one; the heatmap has the source geometry exactly (oblique, anisotropic source);
// deleting the most salient voxels removes the score faster than deleting random ones; the
// predictive entropy is higher on the object's border than away from it.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>

#include "sagitta/core/volume_io.h"
#include "sagitta/explain/error.h"
#include "sagitta/explain/explain.h"
#include "sagitta/segmentation/model.h"
#include "sagitta/segmentation/train.h"
#include "segmentation/phantoms.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;
namespace seg = sagitta::segmentation;
namespace xp = sagitta::explain;
using seg::Image;

namespace {

struct Phantom {
  double sphere[4];     // centre x y z, radius (mm): label 1, bright
  double ellipsoid[4];  // label 2, darker and flattened along z
};

Phantom phantom(unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  return {{28 + 4 * u(rng), 32 + 4 * u(rng), 12 + 2 * u(rng), 9 + 1.5 * u(rng)},
          {54 + 4 * u(rng), 50 + 4 * u(rng), 12 + 2 * u(rng), 10 + 1.5 * u(rng)}};
}

int truth(const Phantom& p, double x, double y, double z) {
  if (std::hypot(x - p.sphere[0], y - p.sphere[1], z - p.sphere[2]) < p.sphere[3]) return 1;
  if (std::hypot(x - p.ellipsoid[0], y - p.ellipsoid[1], (z - p.ellipsoid[2]) * 1.6) < p.ellipsoid[3]) return 2;
  return 0;
}

// A "CT": soft-tissue cylinder in air, the two objects, noise.
Image::Pointer image(const Phantom& p, unsigned seed, std::array<unsigned, 3> size = {40, 40, 12},
                     std::array<double, 3> spacing = {2, 2, 2}, std::array<double, 3> origin = {0, 0, 0}, double oblique = 0) {
  std::mt19937 rng(seed * 7919u + 1);
  std::normal_distribution<float> noise(0, 15);
  return sagitta::testing::make_volume(
      size, spacing,
      [&](double x, double y, double z) {
        const int l = truth(p, x, y, z);
        const float v = l == 1 ? 160.0f : l == 2 ? 70.0f : std::hypot(x - 40, y - 40) < 36 ? 20.0f : -1000.0f;
        return v + noise(rng);
      },
      origin, oblique);
}

seg::LabelImage::Pointer truth_on(const Phantom& p, const Image& grid, int label) {
  auto out = seg::LabelImage::New();
  out->SetRegions(grid.GetLargestPossibleRegion());
  out->CopyInformation(&grid);
  out->Allocate();
  itk::ImageRegionIteratorWithIndex<seg::LabelImage> it(out, out->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    Image::PointType q;
    grid.TransformIndexToPhysicalPoint(it.GetIndex(), q);
    it.Set(truth(p, q[0], q[1], q[2]) == label ? 1 : 0);
  }
  return out;
}

double mass_inside(const Image& heatmap, const seg::LabelImage& mask) {
  double in = 0, all = 0;
  const float* h = heatmap.GetBufferPointer();
  const auto* m = mask.GetBufferPointer();
  for (std::size_t i = 0, n = heatmap.GetBufferedRegion().GetNumberOfPixels(); i < n; ++i) {
    all += h[i];
    if (m[i]) in += h[i];
  }
  return all > 0 ? in / all : 0;
}

fs::path train(const fs::path& dir) {
  seg::TrainOptions o;
  std::vector<seg::TrainingPair> pairs;
  for (unsigned seed : {1u, 2u, 3u}) {
    const Phantom p = phantom(seed);
    auto img = image(p, seed);
    auto labels = sagitta::testing::make_volume({40, 40, 12}, {2, 2, 2}, [&](double x, double y, double z) {
      return float(truth(p, x, y, z));
    });
    const fs::path ip = dir / ("image" + std::to_string(seed) + ".nrrd"), lp = dir / ("labels" + std::to_string(seed) + ".nrrd");
    sagitta::WriteOptions w;
    w.pixel_type = sagitta::OutputPixelType::Float;
    sagitta::write_volumes({img}, ip, w);
    w.pixel_type = sagitta::OutputPixelType::Auto;
    sagitta::write_volumes({labels}, lp, w);
    pairs.push_back({ip, lp, ""});
  }
  o.dimensions = 2;
  o.training = {pairs[0], pairs[1]};
  o.validation = {pairs[2]};
  o.labels = seg::parse_label_specs("sphere=1,ellipsoid=2");
  o.output = dir / "model";
  o.base_channels = 8;
  o.depth = 3;
  o.patch_size = {32, 32};
  o.batch_size = 8;
  o.epochs = 8;
  o.iterations_per_epoch = 30;
  o.learning_rate = 3e-3;
  o.threads = 1;  // reproducible, and faster than two OpenMP threads on a busy 2-core machine
  o.seed = 3;
  const auto result = seg::train_unet(o);
  for (const auto& d : result.history.back().dice) std::cout << "validation Dice " << d.name << " " << d.dice.value_or(-1) << std::endl;
  return result.card;
}

}  // namespace

TEST(PhantomExplain, TrainedModelExplainsTheDecidingObject) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const fs::path card_path = train(dir);
  seg::ModelOptions mo;
  mo.threads = 1;
  const seg::Model model = seg::Model::load(sagitta::load_card(card_path), mo);

  // An unseen phantom on the training grid.
  const Phantom p = phantom(11);
  const Image::Pointer volume = image(p, 11);
  const auto sphere = truth_on(p, *volume, 1);

  xp::ExplainOptions o;
  o.sanity = true;
  o.deletion = true;
  o.uncertainty = true;
  for (xp::Method m : {xp::Method::GradCam, xp::Method::GradCamPlusPlus, xp::Method::HiResCam}) {
    SCOPED_TRACE(xp::method_name(m));
    o.method = m;
    o.sanity = m == xp::Method::GradCam;
    o.deletion = m == xp::Method::GradCam;
    o.uncertainty = m == xp::Method::GradCam;
    const xp::Explanation e = xp::explain(model, {volume}, {"sphere"}, o);
    ASSERT_EQ(e.labels.size(), 1u);
    const auto& l = e.labels[0];
    const double mass = mass_inside(*l.heatmap, *sphere);
    std::cout << xp::method_name(m) << ": heatmap mass inside the sphere " << mass << " (inside the predicted mask "
              << l.mass_in_target << ")" << std::endl;
    ::testing::Test::RecordProperty(xp::method_name(m) + "_mass_inside_object", std::to_string(mass));
    EXPECT_GE(mass, 0.8);
    if (m != xp::Method::GradCam) continue;

    ASSERT_TRUE(l.randomisation_correlation.has_value());
    std::cout << "randomised-weights correlation " << *l.randomisation_correlation << std::endl;
    ::testing::Test::RecordProperty("randomisation_correlation", std::to_string(*l.randomisation_correlation));
    EXPECT_LT(std::abs(*l.randomisation_correlation), 0.5);

    ASSERT_TRUE(l.deletion.has_value());
    std::cout << "deletion area " << l.deletion->area << ", random order " << l.deletion->random_area << std::endl;
    EXPECT_EQ(l.deletion->scores.front(), 1.0);
    EXPECT_LT(l.deletion->area, l.deletion->random_area);

    // Entropy: the model is unsure on the sphere's border, sure inside it and in the ring of
    // background around it.
    ASSERT_TRUE(e.uncertainty);
    double border = 0, away = 0, inside = 0;
    long nb = 0, na = 0, ni = 0;
    itk::ImageRegionConstIteratorWithIndex<Image> it(e.uncertainty, e.uncertainty->GetLargestPossibleRegion());
    for (; !it.IsAtEnd(); ++it) {
      Image::PointType q;
      e.uncertainty->TransformIndexToPhysicalPoint(it.GetIndex(), q);
      const double d = std::hypot(q[0] - p.sphere[0], q[1] - p.sphere[1], q[2] - p.sphere[2]) - p.sphere[3];
      if (std::abs(d) < 1.5) border += it.Get(), ++nb;
      else if (d > 5 && d < 9 && truth(p, q[0], q[1], q[2]) == 0) away += it.Get(), ++na;
      else if (d < -3) inside += it.Get(), ++ni;
    }
    ASSERT_GT(nb, 0);
    ASSERT_GT(na, 0);
    ASSERT_GT(ni, 0);
    std::cout << "mean entropy on the border " << border / nb << ", around " << away / na << ", inside " << inside / ni
              << std::endl;
    EXPECT_GT(border / nb, 1.3 * away / na);
    EXPECT_GT(border / nb, 1.3 * inside / ni);
  }

  // Oblique, anisotropic source: the heatmap comes back on exactly the source grid.
  const Image::Pointer oblique = image(p, 12, {37, 43, 11}, {1.7, 1.9, 2.3}, {-3.5, 2.25, 1.0}, 8.0);
  o.method = xp::Method::GradCam;
  o.sanity = o.deletion = o.uncertainty = false;
  const xp::Explanation e = xp::explain(model, {oblique}, {"sphere"}, o);
  const Image& h = *e.labels.at(0).heatmap;
  EXPECT_EQ(h.GetLargestPossibleRegion(), oblique->GetLargestPossibleRegion());
  EXPECT_EQ(h.GetOrigin(), oblique->GetOrigin());
  EXPECT_EQ(h.GetSpacing(), oblique->GetSpacing());
  EXPECT_EQ(h.GetDirection(), oblique->GetDirection());
  const double mass = mass_inside(h, *truth_on(p, *oblique, 1));
  std::cout << "oblique source: mass inside the sphere " << mass << std::endl;
  EXPECT_GE(mass, 0.8);
  const float* v = h.GetBufferPointer();
  EXPECT_FLOAT_EQ(*std::max_element(v, v + h.GetBufferedRegion().GetNumberOfPixels()), 1.0f);
  EXPECT_GE(*std::min_element(v, v + h.GetBufferedRegion().GetNumberOfPixels()), 0.0f);

  // Model-agnostic occlusion finds the object too (coarser: occluders of 4 voxels).
  o.method = xp::Method::Occlusion;
  const xp::Explanation occ = xp::explain(model, {volume}, {"sphere"}, o);
  const double occ_mass = mass_inside(*occ.labels.at(0).heatmap, *sphere);
  std::cout << "occlusion: mass inside the sphere " << occ_mass << std::endl;
  ::testing::Test::RecordProperty("occlusion_mass_inside_object", std::to_string(occ_mass));
  EXPECT_GE(occ_mass, 0.5);

  // A label the model does not have.
  EXPECT_THROW(xp::explain(model, {volume}, {"kidney"}, o), xp::ExplainError);
}

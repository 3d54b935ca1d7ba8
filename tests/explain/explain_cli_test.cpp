// `sagitta explain` end to end: outputs in the source geometry, pictures, report; bad input (an
// unknown label, Grad-CAM on a model without activation, an empty region) gives one clear line,
// a non-zero exit and writes nothing.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "sagitta/core/volume_io.h"
#include "segmentation/phantoms.h"
#include "segmentation/script_models.h"
#include "support/test_paths.h"

namespace seg = sagitta::segmentation;
namespace fs = std::filesystem;
using sagitta::testing::run_command;

namespace {

struct Case {
  fs::path dir, card, volume;
  seg::Image::Pointer image;
};

Case make_case() {
  Case c;
  c.dir = sagitta::testing::scratch_dir();
  c.card = sagitta::testing::write_threshold_model(c.dir / "model");
  c.image = sagitta::testing::make_volume({30, 28, 10}, {0.9, 0.9, 2.5}, [](double x, double y, double z) {
    return (x - 11.95) * (x - 11.95) + (y - 12.9) * (y - 12.9) + (z - 111.25) * (z - 111.25) < 40 ? 400.f : -50.f;
  }, {-3, 4, 100}, 10);
  sagitta::WriteOptions wo;
  wo.pixel_type = sagitta::OutputPixelType::Float;
  c.volume = c.dir / "ct.nrrd";
  sagitta::write_volumes({c.image}, c.volume, wo);
  return c;
}

std::string explain(const std::string& args) {
  return sagitta::testing::sagitta_executable().string() + " explain " + args + " --no-progress --threads 1";
}

void expect_refused(const sagitta::testing::ProcessResult& r, const fs::path& out, const std::string& words) {
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find(words), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
  EXPECT_FALSE(fs::exists(out)) << "nothing may be written";
}

}  // namespace

TEST(ExplainCli, OcclusionWritesHeatmapPicturesAndReportInTheSourceGeometry) {
  const Case c = make_case();
  const fs::path out = c.dir / "out";
  const auto r = run_command(explain(c.volume.string() + " --model " + c.card.string() + " --label dense --method occlusion "
                                     "--occlusion-size 4 --colormap inferno --uncertainty -o " + out.string() +
                                     " --heatmap " + (c.dir / "slicer_heatmap.nrrd").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* name : {"heatmap.nrrd", "overlay.png", "montage.png", "uncertainty.nrrd", "report.json"})
    EXPECT_TRUE(fs::exists(out / name)) << name;
  EXPECT_TRUE(fs::exists(c.dir / "slicer_heatmap.nrrd"));
  for (const auto& e : fs::directory_iterator(out)) EXPECT_NE(e.path().filename().string().front(), '.') << e.path();
  for (const auto& e : fs::directory_iterator(c.dir)) EXPECT_NE(e.path().filename().string().front(), '.') << e.path();

  const auto heatmap = sagitta::read_volume(out / "heatmap.nrrd");
  EXPECT_EQ(heatmap->GetLargestPossibleRegion(), c.image->GetLargestPossibleRegion());
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(heatmap->GetOrigin()[i], c.image->GetOrigin()[i], 1e-9);
    EXPECT_NEAR(heatmap->GetSpacing()[i], c.image->GetSpacing()[i], 1e-9);
    for (int j = 0; j < 3; ++j) EXPECT_NEAR(heatmap->GetDirection()[i][j], c.image->GetDirection()[i][j], 1e-9);
  }
  const float* h = heatmap->GetBufferPointer();
  const std::size_t n = heatmap->GetBufferedRegion().GetNumberOfPixels();
  EXPECT_FLOAT_EQ(*std::max_element(h, h + n), 1.0f);
  EXPECT_GE(*std::min_element(h, h + n), 0.0f);

  const auto report = nlohmann::json::parse(std::ifstream(out / "report.json"));
  EXPECT_EQ(report["command"], "explain");
  EXPECT_EQ(report["explanation"]["method"], "occlusion");
  const auto& label = report["explanation"]["labels"][0];
  EXPECT_EQ(label["name"], "dense");
  EXPECT_GT(label["target_voxels"].get<int>(), 0);
  // Occluding the ball removes its score; occluding air does not: the mass sits on the ball.
  EXPECT_GT(label["mass_in_target"].get<double>(), 0.5) << label.dump();
  EXPECT_TRUE(label.contains("deletion"));
  EXPECT_TRUE(label.contains("randomisation"));
  EXPECT_EQ(report["pictures"]["colormap"], "inferno");
  EXPECT_FALSE(report["pictures"]["labels"][0]["montage_slices"].empty());
}

TEST(ExplainCli, UnknownLabelIsRefusedAndNothingWritten) {
  const Case c = make_case();
  const fs::path out = c.dir / "out";
  const auto r = run_command(explain(c.volume.string() + " --model " + c.card.string() + " --label liver --method occlusion -o " +
                                     out.string()));
  expect_refused(r, out, "unknown label 'liver'; the model's labels: dense");
}

TEST(ExplainCli, GradCamWithoutActivationNamesTheMethodsThatWork) {
  const Case c = make_case();
  const fs::path out = c.dir / "out";
  for (const std::string method : {"gradcam", "gradcam++", "hirescam"}) {
    const auto r = run_command(explain(c.volume.string() + " --model " + c.card.string() + " --label dense --method " +
                                       method + " -o " + out.string()));
    expect_refused(r, out, "has no activation output");
    EXPECT_NE(r.err.find("methods that work with it: occlusion"), std::string::npos) << r.err;
  }
}

TEST(ExplainCli, EmptyRegionsAreRefusedAndNothingWritten) {
  const Case c = make_case();
  const fs::path out = c.dir / "out";
  // A uniform volume below the threshold: 'dense' is predicted nowhere.
  auto flat = sagitta::testing::make_volume({30, 28, 10}, {0.9, 0.9, 2.5}, [](double, double, double) { return -50.f; });
  sagitta::WriteOptions wo;
  wo.pixel_type = sagitta::OutputPixelType::Float;
  sagitta::write_volumes({flat}, c.dir / "flat.nrrd", wo);
  auto r = run_command(explain((c.dir / "flat.nrrd").string() + " --model " + c.card.string() +
                               " --label dense --method occlusion -o " + out.string()));
  expect_refused(r, out, "label 'dense' is not predicted anywhere");
  // A box outside the volume.
  r = run_command(explain(c.volume.string() + " --model " + c.card.string() + " --label dense --method occlusion --box 40,0,0,50,5,5 -o " +
                          out.string()));
  expect_refused(r, out, "is empty or outside the volume");
  // An all-zero mask.
  sagitta::write_volumes({flat}, c.dir / "zero.nrrd", wo);
  auto zero = sagitta::testing::make_volume({30, 28, 10}, {0.9, 0.9, 2.5}, [](double, double, double) { return 0.f; });
  sagitta::write_volumes({zero}, c.dir / "zero.nrrd", wo);
  r = run_command(explain(c.volume.string() + " --model " + c.card.string() + " --label dense --method occlusion --mask " +
                          (c.dir / "zero.nrrd").string() + " -o " + out.string()));
  expect_refused(r, out, "the mask region is empty");
  // A malformed box is refused too.
  r = run_command(explain(c.volume.string() + " --model " + c.card.string() + " --label dense --method occlusion --box 1,2,3 -o " +
                          out.string()));
  expect_refused(r, out, "expected six integers");
}

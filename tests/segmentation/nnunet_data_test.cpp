// nnU-Net's data path (segmentation/inference/nnunet_*.cpp) against nnunet_reference.py, which does
// each step with the library calls nnU-Net makes (numpy, scipy.ndimage, skimage, nibabel, torch for
// the float16 Gaussian): preprocessed arrays to 1e-4 relative, crop boxes and shapes exactly, the way
// back's labels identical and probabilities to 1e-5, window steps identical, Gaussian to 1e-6. Skips
// when Debian's python3-numpy/scipy/skimage/nibabel are missing. Plus results folders that are bad.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "sagitta/dicom/open_volume.h"
#include "sagitta/segmentation/error.h"
#include "sagitta/segmentation/nnunet.h"
#include "sagitta/segmentation/sliding_window.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;
namespace nn = sagitta::segmentation::nnunet;
namespace seg = sagitta::segmentation;
using json = nlohmann::ordered_json;
using sagitta::Image;

namespace {

bool python_reference_available() {
  return sagitta::testing::run_command(
             "/usr/bin/python3 -c 'import numpy, scipy.ndimage, skimage.transform, nibabel' 2>/dev/null")
             .exit_code == 0;
}

#define REQUIRE_PYTHON()                                                                                  \
  if (!python_reference_available())                                                                      \
  GTEST_SKIP() << "the Python reference needs Debian's python3-numpy, python3-scipy, python3-skimage and " \
                  "python3-nibabel (apt-get install python3-scipy python3-skimage python3-nibabel)"

json plans_json(const std::string& configuration_name, const json& configuration) {
  json plans;
  plans["dataset_name"] = "Dataset042_Test";
  plans["plans_name"] = "nnUNetPlans";
  plans["image_reader_writer"] = "SimpleITKIO";
  plans["transpose_forward"] = {0, 1, 2};
  plans["transpose_backward"] = {0, 1, 2};
  plans["configurations"][configuration_name] = configuration;
  plans["foreground_intensity_properties_per_channel"]["0"] = {
      {"max", 3000.0}, {"mean", 120.5}, {"median", 80.0}, {"min", -1024.0},
      {"percentile_00_5", -850.25}, {"percentile_99_5", 1400.75}, {"std", 310.125}};
  return plans;
}

json configuration(const std::vector<double>& spacing, const std::vector<int>& patch, const std::vector<std::string>& schemes,
                   const std::vector<bool>& masks) {
  json c;
  c["data_identifier"] = "nnUNetPlans_test";
  c["preprocessor_name"] = "DefaultPreprocessor";
  c["batch_size"] = 2;
  c["patch_size"] = patch;
  c["spacing"] = spacing;
  c["normalization_schemes"] = schemes;
  c["use_mask_for_norm"] = masks;
  c["resampling_fn_data"] = "resample_data_or_seg_to_shape";
  c["resampling_fn_data_kwargs"] = {{"is_seg", false}, {"order", 3}, {"order_z", 0}, {"force_separate_z", nullptr}};
  c["resampling_fn_seg"] = "resample_data_or_seg_to_shape";
  c["resampling_fn_seg_kwargs"] = {{"is_seg", true}, {"order", 1}, {"order_z", 0}, {"force_separate_z", nullptr}};
  c["resampling_fn_probabilities"] = "resample_data_or_seg_to_shape";
  c["resampling_fn_probabilities_kwargs"] = {{"is_seg", false}, {"order", 1}, {"order_z", 0}, {"force_separate_z", nullptr}};
  c["architecture"] = {{"network_class_name", "dynamic_network_architectures.architectures.unet.PlainConvUNet"},
                       {"arch_kwargs", {{"n_stages", 2}, {"features_per_stage", {4, 8}}}},
                       {"_kw_requires_import", {"conv_op", "norm_op", "dropout_op", "nonlin"}}};
  return c;
}

json dataset_json(int channels, const json& labels) {
  json d;
  for (int c = 0; c < channels; ++c) d["channel_names"][std::to_string(c)] = c == 0 ? "CT" : "other";
  d["labels"] = labels;
  d["numTraining"] = 1;
  d["file_ending"] = ".nii.gz";
  return d;
}

fs::path write_folder(const fs::path& root, const std::string& configuration_name, const json& plans, const json& dataset,
                      bool checkpoint = true) {
  const fs::path f = root / "Dataset042_Test" / ("nnUNetTrainer__nnUNetPlans__" + configuration_name);
  fs::create_directories(f / "fold_0");
  std::ofstream(f / "plans.json") << plans.dump(2);
  std::ofstream(f / "dataset.json") << dataset.dump(2);
  if (checkpoint) std::ofstream(f / "fold_0" / "checkpoint_final.pth") << "not a real checkpoint";
  return f;
}

// An image of x y z `size` whose voxel (i, j, k) is f(i, j, k).
Image::Pointer make_image(std::array<int, 3> size, std::array<double, 3> spacing, const std::array<double, 9>& direction,
                          const std::function<float(int, int, int)>& f) {
  auto img = Image::New();
  Image::SizeType s;
  for (unsigned a = 0; a < 3; ++a) s[a] = std::size_t(size[a]);
  img->SetRegions(Image::RegionType(s));
  Image::SpacingType sp;
  Image::DirectionType d;
  Image::PointType o;
  for (unsigned a = 0; a < 3; ++a) {
    sp[a] = spacing[a];
    o[a] = 10.0 * a - 7.5;
    for (unsigned b = 0; b < 3; ++b) d[a][b] = direction[a * 3 + b];
  }
  img->SetSpacing(sp);
  img->SetDirection(d);
  img->SetOrigin(o);
  img->Allocate();
  float* p = img->GetBufferPointer();
  for (int k = 0; k < size[2]; ++k)
    for (int j = 0; j < size[1]; ++j)
      for (int i = 0; i < size[0]; ++i) *p++ = f(i, j, k);
  return img;
}

constexpr std::array<double, 9> kIdentity = {1, 0, 0, 0, 1, 0, 0, 0, 1};

// A body inside a zero border of `border` voxels, with a zero hole (filled by binary_fill_holes).
float body(int i, int j, int k, std::array<int, 3> n, int border, float scale, float offset) {
  if (i < border || j < border || k < border || i >= n[0] - border || j >= n[1] - border || k >= n[2] - border)
    return 0;
  const int ci = n[0] / 2, cj = n[1] / 2, ck = n[2] / 2;
  if (std::abs(i - ci) <= 1 && std::abs(j - cj) <= 1 && std::abs(k - ck) <= 0) return 0;
  const double v = std::sin(0.37 * i + 0.11 * j * j) * std::cos(0.23 * j - 0.5 * k) + 0.002 * ((i * 7919 + j * 104729 + k * 1299709) % 1000);
  return float(offset + scale * v);
}

struct Reference {
  fs::path dir;
  json result;
  double seconds = 0;  // the whole Python run, interpreter start included
};

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

Reference run_reference(const fs::path& folder, const std::vector<Image::Pointer>& channels, int seed,
                        const json& steps = json::array(), const json& tiles = json::array()) {
  Reference r;
  r.dir = folder.parent_path().parent_path() / "reference";
  fs::create_directories(r.dir);
  json c;
  c["folder"] = folder.string();
  const auto size = channels[0]->GetLargestPossibleRegion().GetSize();
  c["shape"] = {size[2], size[1], size[0]};
  for (unsigned a = 0; a < 3; ++a) {
    c["spacing"].push_back(channels[0]->GetSpacing()[a]);
    c["origin"].push_back(channels[0]->GetOrigin()[a]);
    for (unsigned b = 0; b < 3; ++b) c["direction"].push_back(channels[0]->GetDirection()[a][b]);
  }
  for (std::size_t i = 0; i < channels.size(); ++i) {
    const fs::path f = r.dir / ("input_" + std::to_string(i) + ".f32");
    std::ofstream(f, std::ios::binary)
        .write(reinterpret_cast<const char*>(channels[i]->GetBufferPointer()),
               std::streamsize(channels[i]->GetPixelContainer()->Size() * sizeof(float)));
    c["channels"].push_back(f.string());
  }
  c["seed"] = seed;
  c["steps"] = steps;
  c["tiles"] = tiles;
  std::ofstream(r.dir / "case.json") << c.dump();
  const auto t0 = std::chrono::steady_clock::now();
  const auto p = sagitta::testing::run_command(
      "/usr/bin/python3 " + sagitta::testing::shell_quote(sagitta::testing::source_dir() / "tests/segmentation/nnunet_reference.py") +
      " " + sagitta::testing::shell_quote(r.dir / "case.json") + " " + sagitta::testing::shell_quote(r.dir));
  r.seconds = seconds_since(t0);
  EXPECT_EQ(p.exit_code, 0) << p.err;
  r.result = json::parse(sagitta::testing::read_file(r.dir / "result.json"));
  return r;
}

nn::Array read_array(const fs::path& f, const nn::Shape& shape) {
  nn::Array a;
  a.shape = shape;
  a.values = sagitta::testing::read_floats(f);
  EXPECT_EQ(int64_t(a.values.size()), a.size()) << f;
  return a;
}

// Largest |a - b| / max(1, |b|).
double worst_relative(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - double(b[i])) / std::max(1.0, std::abs(double(b[i]))));
  return worst;
}

// The whole data path of one case against the reference: preprocessing, then the way back with the
// reference's synthetic logits.
void check_case(const fs::path& folder, const std::vector<Image::Pointer>& channels, int seed) {
  const nn::Plan plan = nn::read_results_folder(folder);
  const Reference ref = run_reference(folder, channels, seed);
  const auto t0 = std::chrono::steady_clock::now();
  const nn::Preprocessed pre = nn::preprocess(plan, channels);
  const double preprocess_seconds = seconds_since(t0);
  const nn::Properties& p = pre.properties;
  const json& r = ref.result;
  EXPECT_EQ(json(p.shape_before_cropping), r["shape_before_cropping"]);
  EXPECT_EQ(json(p.shape_after_cropping), r["shape_after_cropping"]);
  EXPECT_EQ(json(p.new_shape), r["new_shape"]);
  for (std::size_t a = 0; a < 3; ++a) {
    EXPECT_EQ(p.bbox[a][0], r["bbox"][a][0].get<int64_t>()) << "axis " << a;
    EXPECT_EQ(p.bbox[a][1], r["bbox"][a][1].get<int64_t>()) << "axis " << a;
    EXPECT_DOUBLE_EQ(p.reader_spacing[a], r["spacing"][a].get<double>());
    EXPECT_DOUBLE_EQ(p.target_spacing[a], r["target_spacing"][a].get<double>());
  }
  for (std::size_t c = 0; c < pre.channels.size(); ++c) {
    const nn::Array want = read_array(ref.dir / ("data_" + std::to_string(c) + ".f32"), p.new_shape);
    const double worst = worst_relative(pre.channels[c].values, want.values);
    EXPECT_LE(worst, 1e-4) << "channel " << c;
    std::cout << "[ measure  ] channel " << c << " preprocessed " << p.new_shape[0] << "x" << p.new_shape[1] << "x"
              << p.new_shape[2] << ": worst relative difference " << worst << "\n";
  }
  const int heads = r["heads"].get<int>();
  ASSERT_EQ(heads, plan.heads());
  std::vector<nn::Array> logits;
  for (int h = 0; h < heads; ++h) logits.push_back(read_array(ref.dir / ("logits_" + std::to_string(h) + ".f32"), p.new_shape));
  const auto t1 = std::chrono::steady_clock::now();
  const nn::Exported out = nn::export_prediction(plan, p, logits, true);
  std::cout << "[ measure  ] C++ preprocess " << preprocess_seconds << " s, export " << seconds_since(t1)
            << " s; Python reference (all steps, interpreter and imports included) " << ref.seconds << " s\n";
  // labels identical, in the source image's geometry
  const std::vector<float> want_labels = sagitta::testing::read_floats(ref.dir / "labels.f32");
  const auto* lb = out.labels->GetBufferPointer();
  ASSERT_EQ(want_labels.size(), out.labels->GetPixelContainer()->Size());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < want_labels.size(); ++i) differing += lb[i] != uint16_t(want_labels[i]);
  EXPECT_EQ(differing, 0u) << "of " << want_labels.size() << " labels";
  EXPECT_EQ(out.labels->GetOrigin(), channels[0]->GetOrigin());
  EXPECT_EQ(out.labels->GetSpacing(), channels[0]->GetSpacing());
  EXPECT_EQ(out.labels->GetDirection(), channels[0]->GetDirection());
  EXPECT_EQ(out.labels->GetLargestPossibleRegion(), channels[0]->GetLargestPossibleRegion());
  double worst = 0;
  for (int h = 0; h < heads; ++h) {
    const nn::Array want = read_array(ref.dir / ("probabilities_" + std::to_string(h) + ".f32"), p.shape_after_cropping);
    for (std::size_t i = 0; i < want.values.size(); ++i)
      worst = std::max(worst, std::abs(double(out.cropped_probabilities[std::size_t(h)].values[i]) - want.values[i]));
  }
  EXPECT_LE(worst, 1e-5);
  std::cout << "[ measure  ] way back: " << differing << " labels differ, worst probability difference " << worst << "\n";
}

const json kLabels = {{"background", 0}, {"liver", 1}, {"spleen", 2}};

}  // namespace

TEST(NnUNetData, AnisotropicTwoChannelsCtAndMaskedZScore) {
  REQUIRE_PYTHON();
  const fs::path dir = sagitta::testing::scratch_dir();
  const std::array<int, 3> n = {37, 29, 11};
  const json c = configuration({2.0, 0.9, 0.9}, {8, 32, 32}, {"CTNormalization", "ZScoreNormalization"}, {false, true});
  const fs::path folder = write_folder(dir, "3d_fullres", plans_json("3d_fullres", c), dataset_json(2, kLabels));
  auto ct = make_image(n, {0.7, 0.7, 3.0}, kIdentity, [&](int i, int j, int k) { return body(i, j, k, n, 3, 900, 40); });
  auto mr = make_image(n, {0.7, 0.7, 3.0}, kIdentity, [&](int i, int j, int k) {
    return i > 5 && j > 6 && i < 30 ? 250.0f + body(i, j, k, n, 2, 60, 0) : 0.0f;
  });
  check_case(folder, {ct, mr}, 1);
}

TEST(NnUNetData, IsotropicReorientedAndTransposed) {
  REQUIRE_PYTHON();
  const fs::path dir = sagitta::testing::scratch_dir();
  const std::array<int, 3> n = {23, 31, 19};
  json plans = plans_json("3d_fullres", configuration({1.0, 1.0, 1.0}, {16, 16, 16}, {"ZScoreNormalization"}, {false}));
  plans["image_reader_writer"] = "NibabelIOWithReorient";
  plans["transpose_forward"] = {2, 0, 1};
  plans["transpose_backward"] = {1, 2, 0};
  const fs::path folder = write_folder(dir, "3d_fullres", plans, dataset_json(1, kLabels));
  // spacings exact in float32, as NIfTI headers hold them; stored i runs head-ward (S), j posterior (A reversed), k to the right: a permutation with a flip
  const std::array<double, 9> dir_lps = {0, 0, -1, 0, 1, 0, 1, 0, 0};
  auto img = make_image(n, {1.25, 0.875, 1.125}, dir_lps, [&](int i, int j, int k) { return body(i, j, k, n, 2, 50, 10); });
  const nn::Plan plan = nn::read_results_folder(folder);
  EXPECT_EQ(plan.reader, nn::Reader::NibabelWithReorient);
  const nn::AxisMap m = nn::reader_axes(plan.reader, *img);
  EXPECT_EQ(m.source_axis, (std::array<int, 3>{0, 1, 2}));  // S A R = stored i j k
  EXPECT_EQ(m.flipped, (std::array<bool, 3>{false, true, false}));
  check_case(folder, {img}, 2);
}

TEST(NnUNetData, TwoDimensionalRegionsRescaled) {
  REQUIRE_PYTHON();
  const fs::path dir = sagitta::testing::scratch_dir();
  const std::array<int, 3> n = {27, 33, 5};
  json c = configuration({0.8, 0.8}, {32, 32}, {"RescaleTo01Normalization"}, {false});
  const json labels = {{"background", 0}, {"whole", {1, 2}}, {"core", 2}};
  json dataset = dataset_json(1, labels);
  dataset["regions_class_order"] = {1, 2};
  const fs::path folder = write_folder(dir, "2d", plans_json("2d", c), dataset);
  auto img = make_image(n, {1.0, 1.0, 2.5}, kIdentity, [&](int i, int j, int k) { return body(i, j, k, n, 1, 30, 5); });
  const nn::Plan plan = nn::read_results_folder(folder);
  EXPECT_TRUE(plan.two_d);
  EXPECT_TRUE(plan.has_regions);
  EXPECT_EQ(plan.heads(), 2);
  check_case(folder, {img}, 3);
}

TEST(NnUNetData, ForcedSeparateZOnIsotropicData) {
  REQUIRE_PYTHON();
  const fs::path dir = sagitta::testing::scratch_dir();
  const std::array<int, 3> n = {21, 18, 14};
  json c = configuration({1.3, 0.75, 0.75}, {16, 16, 16}, {"CTNormalization"}, {false});
  c["resampling_fn_data_kwargs"]["force_separate_z"] = true;
  c["resampling_fn_probabilities_kwargs"]["force_separate_z"] = false;
  const fs::path folder = write_folder(dir, "3d_fullres", plans_json("3d_fullres", c), dataset_json(1, kLabels));
  auto img = make_image(n, {1.0, 1.0, 1.5}, kIdentity, [&](int i, int j, int k) { return body(i, j, k, n, 0, 1200, -200); });
  check_case(folder, {img}, 4);
}

TEST(NnUNetData, ObliqueReorientedNibabel) {
  // a rotation of about 30 degrees: nibabel's io_orientation picks the closest axes
  REQUIRE_PYTHON();
  const fs::path dir = sagitta::testing::scratch_dir();
  const std::array<int, 3> n = {19, 22, 17};
  json plans = plans_json("3d_fullres", configuration({1.5, 1.5, 1.5}, {16, 16, 16}, {"CTNormalization"}, {false}));
  plans["image_reader_writer"] = "NibabelIOWithReorient";
  const fs::path folder = write_folder(dir, "3d_fullres", plans, dataset_json(1, kLabels));
  const double c = std::cos(0.52), s = std::sin(0.52);
  const std::array<double, 9> rot = {c, 0, s, 0, -1, 0, s, 0, -c};  // columns: x' z-ish, -y, z' x-ish
  auto img = make_image(n, {1.25, 1.0, 2.0}, rot, [&](int i, int j, int k) { return body(i, j, k, n, 2, 700, 30); });
  check_case(folder, {img}, 6);
}

TEST(NnUNetData, EmptyImageKeepsTheWholeBox) {
  REQUIRE_PYTHON();
  const fs::path dir = sagitta::testing::scratch_dir();
  const std::array<int, 3> n = {12, 10, 9};
  const json c = configuration({1.0, 0.8, 0.8}, {8, 8, 8}, {"ZScoreNormalization"}, {true});
  const fs::path folder = write_folder(dir, "3d_fullres", plans_json("3d_fullres", c), dataset_json(1, kLabels));
  auto img = make_image(n, {1.0, 1.0, 1.0}, kIdentity, [](int, int, int) { return 0.0f; });
  check_case(folder, {img}, 7);
}

TEST(NnUNetData, NewShapeRoundsHalfToEvenAsPython) {
  // Python's round(): 2.5 -> 2, 3.5 -> 4
  EXPECT_EQ(nn::compute_new_shape({5, 7, 9}, {1.0, 1.0, 1.0}, {2.0, 2.0, 2.0}), (nn::Shape{2, 4, 4}));
}

TEST(NnUNetData, RealCt) {
  REQUIRE_PYTHON();
  SAGITTA_REQUIRE_EXTERNAL(ct, "ct/totalsegmentator/example_ct_dicom");
  const fs::path dir = sagitta::testing::scratch_dir();
  const auto volume = sagitta::dicom::open_volume(ct).volume;
  json c = configuration({3.0, 1.5, 1.5}, {64, 128, 128}, {"CTNormalization"}, {false});
  const fs::path folder = write_folder(dir, "3d_fullres", plans_json("3d_fullres", c),
                                       dataset_json(1, {{"background", 0}, {"a", 1}, {"b", 2}, {"c", 3}}));
  check_case(folder, {volume}, 5);
}

TEST(NnUNetData, WindowStepsAndGaussianMatchTheReference) {
  REQUIRE_PYTHON();
  const fs::path dir = sagitta::testing::scratch_dir();
  const json c = configuration({1.0, 1.0, 1.0}, {16, 16, 16}, {"NoNormalization"}, {false});
  const fs::path folder = write_folder(dir, "3d_fullres", plans_json("3d_fullres", c), dataset_json(1, kLabels));
  const std::array<int, 3> n = {9, 9, 9};
  auto img = make_image(n, {1, 1, 1}, kIdentity, [](int i, int, int) { return float(i); });
  const json steps = json::parse("[[110,64],[64,64],[65,64],[200,96],[37,5],[129,128],[300,7],[511,160],[20,16],[33,16]]");
  const json tiles = json::parse("[[64,128,128],[7,9,11],[80,192,160],[512,512],[5,6,7]]");
  const Reference ref = run_reference(folder, {img}, 0, steps, tiles);
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const int size = steps[i][0], tile = steps[i][1];
    EXPECT_EQ(json(nn::sliding_window_steps(size, tile, 0.5)), ref.result["steps"][i]) << size << " / " << tile;
    EXPECT_EQ(json(seg::window_starts(size, tile, 0.5, seg::StepRule::NnUNet)), ref.result["steps"][i]);
  }
  for (std::size_t t = 0; t < tiles.size(); ++t) {
    const std::vector<int> tile = tiles[t];
    const std::vector<float> want = sagitta::testing::read_floats(ref.dir / ("gaussian_" + std::to_string(t) + ".f32"));
    const std::vector<float> got = nn::gaussian_importance(tile);
    ASSERT_EQ(got.size(), want.size());
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(double(got[i]) - want[i]));
    EXPECT_LE(worst, 1e-6) << "tile " << t;
    std::cout << "[ measure  ] Gaussian of tile " << t << ": worst difference " << worst << "\n";
    if (tile.size() == 3) {  // through the engine: x y z patch, same z y x weights
      const auto engine = seg::importance_weights({tile[2], tile[1], tile[0]}, 1.0 / 8, seg::ImportanceMap::NnUNet);
      EXPECT_EQ(engine, got);
    }
  }
}

TEST(NnUNetData, ArraysRoundTripThroughImages) {
  nn::Array a({3, 4, 5});
  for (std::size_t i = 0; i < a.values.size(); ++i) a.values[i] = float(i) * 0.5f;
  const auto img = nn::as_image(a);
  EXPECT_EQ(img->GetLargestPossibleRegion().GetSize()[0], 5u);
  EXPECT_EQ(img->GetLargestPossibleRegion().GetSize()[2], 3u);
  const nn::Array back = nn::to_array(*img, nn::AxisMap{});
  EXPECT_EQ(back.shape, a.shape);
  EXPECT_EQ(back.values, a.values);
}

TEST(NnUNetData, HalfRounding) {
  EXPECT_EQ(nn::round_to_half(1.0f), 1.0f);
  EXPECT_EQ(nn::round_to_half(1.0f + 2.0f / 4096), 1.0f);               // half way: to even (down)
  EXPECT_EQ(nn::round_to_half(1.0f + 3.0f / 4096), 1.0f + 1.0f / 1024);  // nearest
  EXPECT_EQ(nn::round_to_half(1.0f + 6.0f / 4096), 1.0f + 1.0f / 512);   // half way: to even (up)
  EXPECT_EQ(nn::round_to_half(1e-9f), 0.0f);
  EXPECT_EQ(nn::round_to_half(6e-8f), 5.9604644775390625e-08f);       // smallest subnormal
  EXPECT_TRUE(std::isinf(nn::round_to_half(70000.0f)));
}

// ---- bad folders -----------------------------------------------------------------------------------

namespace {

std::string failure(const fs::path& folder) {
  try {
    nn::read_results_folder(folder);
  } catch (const seg::SegmentationError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(NnUNetData, BadFoldersNameWhatIsMissing) {
  const fs::path dir = sagitta::testing::scratch_dir();
  const json c = configuration({1.0, 1.0, 1.0}, {16, 16, 16}, {"CTNormalization"}, {false});
  const json plans = plans_json("3d_fullres", c);
  const json dataset = dataset_json(1, kLabels);
  const auto fresh = [&](const std::string& name, const json& p, const json& d, bool ckpt = true) {
    return write_folder(dir / name, "3d_fullres", p, d, ckpt);
  };
  EXPECT_NE(failure(dir / "nowhere").find("not a folder"), std::string::npos);
  {
    const fs::path f = fresh("noplans", plans, dataset);
    fs::remove(f / "plans.json");
    EXPECT_NE(failure(f).find("plans.json is missing"), std::string::npos) << failure(f);
  }
  {
    const fs::path f = fresh("nodataset", plans, dataset);
    fs::remove(f / "dataset.json");
    EXPECT_NE(failure(f).find("dataset.json is missing"), std::string::npos);
  }
  EXPECT_NE(failure(fresh("nockpt", plans, dataset, false)).find("no fold_*/checkpoint_final.pth"), std::string::npos);
  {
    json p = plans;
    p["configurations"].erase("3d_fullres");
    p["configurations"]["2d"] = c;
    EXPECT_NE(failure(fresh("noconfig", p, dataset)).find("no configuration '3d_fullres'"), std::string::npos);
  }
  {
    json p = plans;
    p["configurations"]["3d_fullres"]["previous_stage"] = "3d_lowres";
    EXPECT_NE(failure(fresh("cascade", p, dataset)).find("cascade"), std::string::npos);
  }
  {
    const fs::path f = write_folder(dir / "lowres", "3d_lowres", plans_json("3d_lowres", c), dataset);
    EXPECT_NE(failure(f).find("cascade"), std::string::npos);
  }
  {
    json p = plans;
    p["image_reader_writer"] = "Tiff3DIO";
    EXPECT_NE(failure(fresh("tiff", p, dataset)).find("image reader 'Tiff3DIO' is not supported"), std::string::npos);
  }
  {
    json p = plans;
    p["configurations"]["3d_fullres"]["normalization_schemes"] = {"MyNormalization"};
    EXPECT_NE(failure(fresh("norm", p, dataset)).find("'MyNormalization' is not supported"), std::string::npos);
  }
  {
    json p = plans;
    p["configurations"]["3d_fullres"]["resampling_fn_data"] = "resample_torch_fornnunet";
    EXPECT_NE(failure(fresh("resample", p, dataset)).find("resampling_fn_data"), std::string::npos);
  }
  {
    json p = plans;
    p["foreground_intensity_properties_per_channel"].erase("0");
    EXPECT_NE(failure(fresh("intensity", p, dataset)).find("foreground intensity properties for channel 0"),
              std::string::npos);
  }
  {
    json d = dataset;
    d["labels"] = {{"background", 0}, {"a", {1, 2}}};
    EXPECT_NE(failure(fresh("regions", plans, d)).find("regions_class_order"), std::string::npos);
  }
  {
    const fs::path f = dir / "Dataset042_Test" / "oddname";
    fs::create_directories(f);
    EXPECT_NE(failure(f).find("<trainer>__<plans>__<configuration>"), std::string::npos);
  }
  {
    const fs::path f = fresh("badjson", plans, dataset);
    std::ofstream(f / "plans.json") << "{ not json";
    EXPECT_NE(failure(f).find("plans.json is not valid JSON"), std::string::npos);
  }
  // and a good one reads
  const nn::Plan plan = nn::read_results_folder(fresh("good", plans, dataset));
  EXPECT_EQ(plan.configuration, "3d_fullres");
  EXPECT_EQ(plan.trainer, "nnUNetTrainer");
  EXPECT_EQ(plan.heads(), 3);
  EXPECT_EQ(plan.checkpoint("0").filename(), "checkpoint_final.pth");
  EXPECT_THROW(plan.checkpoint("0", "best"), seg::SegmentationError);
  EXPECT_THROW(plan.checkpoint("3"), seg::SegmentationError);
  EXPECT_EQ(plan.network_class_name, "dynamic_network_architectures.architectures.unet.PlainConvUNet");
  EXPECT_EQ(plan.architecture["arch_kwargs"]["n_stages"], 2);
}

// The `sagitta` command line as a user meets it: help, version, JSON, and one-line errors with
// distinct exit codes for bad usage (2) and bad data or outputs (3), with nothing left behind.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <fstream>

#include "sagitta/core/volume_io.h"
#include "support/synthetic_dicom.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using sagitta::testing::run_command;
using sagitta::testing::scratch_dir;

std::string sagitta() { return "'" + sagitta::testing::sagitta_executable().string() + "'"; }

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

// Two small series (numbers 7 and 8) in one folder.
fs::path two_series(const fs::path& dir) {
  sagitta::testing::SeriesSpec a;
  a.rows = a.columns = 16;
  a.slices = 6;
  a.series_number = 7;
  a.series_description = "first";
  a.markers = {{{0, 0, -10}, 2.0, 900}};
  sagitta::testing::SeriesSpec b = a;
  b.series_number = 8;
  b.series_description = "second";
  b.study_instance_uid = "";  // a different study is fine too
  b.file_prefix = "b";
  sagitta::testing::write_series(a, dir / "a");
  sagitta::testing::write_series(b, dir / "b");
  return dir;
}

TEST(SagittaCli, VersionAndHelp) {
  auto r = run_command(sagitta() + " --version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("sagitta 0."), std::string::npos) << r.out;
  r = run_command(sagitta() + " convert --help");
  EXPECT_EQ(r.exit_code, 0);
  // Help comes from the parameter table: flags, choices and descriptions.
  for (const char* s : {"--output", "--series", "--type", "--resample-irregular", "auto", "unevenly spaced"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << "\n" << r.out;
}

TEST(SagittaCli, UsageErrorsAreOneLineWithExitCode2) {
  for (const char* args : {"", " convert", " convert /tmp --type banana -o x.nrrd", " info --no-such-flag /tmp",
                           " frobnicate"}) {
    const auto r = run_command(sagitta() + args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
  }
}

TEST(SagittaCli, InfoJsonListsStacksAndDecisions) {
  const fs::path dir = two_series(scratch_dir());
  std::ofstream(dir / "notes.txt") << "not DICOM\n";
  const auto r = run_command(sagitta() + " info --json '" + dir.string() + "'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["stacks"].size(), 2u);
  EXPECT_EQ(j["stacks"][0]["series"]["number"], "7");
  EXPECT_EQ(j["stacks"][0]["size"], nlohmann::json({16, 16, 6}));
  EXPECT_EQ(j["files_seen"], 13);
  EXPECT_EQ(j["files_used"], 12);
  bool skipped_text = false;
  for (const auto& d : j["decisions"])
    skipped_text |= d["subject"].get<std::string>().find("notes.txt") != std::string::npos;
  EXPECT_TRUE(skipped_text);
}

TEST(SagittaCli, ConvertWithSeveralSeriesNamesThemAndWritesNothing) {
  const fs::path dir = two_series(scratch_dir());
  const fs::path out = dir / "out.nrrd";
  auto r = run_command(fmt::format("{} convert '{}' -o '{}'", sagitta(), dir.string(), out.string()));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("7 ("), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("8 ("), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));

  r = run_command(fmt::format("{} convert '{}' --series 8 -o '{}' --json", sagitta(), dir.string(), out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["stack"]["series"]["description"], "second");
  EXPECT_TRUE(fs::exists(out));
}

TEST(SagittaCli, BadDataAndUnwritableOutputFailCleanly) {
  const fs::path dir = scratch_dir();
  fs::create_directories(dir / "empty");
  std::ofstream(dir / "empty" / "readme.txt") << "nothing here\n";
  auto r = run_command(fmt::format("{} convert '{}' -o '{}'", sagitta(), (dir / "empty").string(),
                                   (dir / "x.nrrd").string()));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("no loadable DICOM"), std::string::npos) << r.err;

  const fs::path series = two_series(dir / "s") / "a";
  for (const std::string& out : {(dir / "missing-folder" / "x.nrrd").string(), (dir / "x.png").string()}) {
    r = run_command(fmt::format("{} convert '{}' -o '{}'", sagitta(), series.string(), out));
    EXPECT_EQ(r.exit_code, 3) << out;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  // Nothing partial anywhere in the output folder.
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
}

// One failure policy for every executable: an output folder that cannot be created is bad output
// (exit 3, one line naming the path), not an internal failure, whichever command meets it.
TEST(SagittaCli, AnOutputFolderThatCannotBeCreatedIsExit3InEveryCommand) {
  const fs::path dir = scratch_dir();
  std::ofstream(dir / "a-file") << "x";
  const fs::path out = dir / "a-file" / "out";
  const fs::path src = sagitta::testing::source_dir();
  const std::string series = (src / "testdata" / "demo" / "ct_phantom").string();
  const std::string model = (src / "testdata" / "models" / "phantom" / "model.json").string();
  for (const std::string& command :
       {fmt::format("segment '{}' --model '{}' -o '{}'", series, model, out.string()),
        fmt::format("explain '{}' --model '{}' --label organ -o '{}'", series, model, out.string()),
        fmt::format("pacs get --study 1.2.3 -o '{}' --port 1", out.string())}) {
    const auto r = run_command(sagitta() + " " + command);
    EXPECT_EQ(r.exit_code, 3) << command << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_NE(r.err.find(out.string()), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("unexpected"), std::string::npos) << r.err;
  }
}

// The fast case: the phantom series, model and true labels (the demo's default is the real CT).
TEST(SagittaCli, DemoRunsTheWholePipelineOnShippedData) {
  const fs::path out = scratch_dir() / "demo";
  const fs::path src = sagitta::testing::source_dir();
  const auto r = run_command(fmt::format("{} demo -o '{}' --threads 1 --data '{}' --model '{}' --truth '{}'", sagitta(), out.string(),
                                         (src / "testdata" / "demo" / "ct_phantom").string(),
                                         (src / "testdata" / "models" / "phantom" / "model.json").string(),
                                         (src / "testdata" / "demo" / "ct_phantom_labels.nrrd").string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* f : {"ct.nrrd", "segmentation/labels.nrrd", "segmentation/probabilities.nrrd",
                        "segmentation/report.json", "surfaces.vtp", "report.json", "report.html"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  std::ifstream report(out / "report.json");
  const auto j = nlohmann::json::parse(report);
  std::vector<std::string> commands;
  for (const auto& s : j["steps"]) {
    commands.push_back(s["command"]);
    if (!s.contains("skipped")) {
      EXPECT_EQ(s["exit_code"], 0) << s.dump();
    }
  }
  EXPECT_EQ(commands, (std::vector<std::string>{"info", "convert", "segment", "explain", "mesh", "render", "report"}));
  EXPECT_NE(r.out.find("open the report: " + (out / "report.html").string()), std::string::npos) << r.out;
  // ctest runs under xvfb-run: the overview picture must be there.
  if (std::getenv("DISPLAY")) {
    EXPECT_TRUE(fs::exists(out / "overview.png"));
  }
  // The phantom model never saw the demo series; its labels must still match the phantom's truth.
  ASSERT_EQ(j["dice"].size(), 2u);
  for (const auto& d : j["dice"]) EXPECT_GE(d["dice"].get<double>(), 0.9) << d.dump();
  // The converted volume keeps the series' geometry.
  const auto ct = sagitta::read_volume(out / "ct.nrrd");
  EXPECT_EQ(ct->GetLargestPossibleRegion().GetSize()[2], 40u);
}

}  // namespace

namespace {

// Converts a one-marker series and returns (pixel type chosen, value read back at the marker).
std::pair<std::string, float> convert_marker(double intercept, double value) {
  const fs::path dir = scratch_dir();
  sagitta::testing::SeriesSpec spec;
  spec.rows = spec.columns = 16;
  spec.slices = 5;
  spec.rescale_intercept = intercept;
  spec.background = intercept;  // stored 0
  spec.markers = {{{-8, -8, -12}, 1.0, value}};
  sagitta::testing::write_series(spec, dir / "in");
  const fs::path out = dir / "out.nrrd";
  const auto r = run_command(fmt::format("{} convert '{}' -o '{}' --json", sagitta(), (dir / "in").string(), out.string()));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto image = sagitta::read_volume(out);
  sagitta::Image::PointType p;
  p[0] = -8, p[1] = -8, p[2] = -12;
  sagitta::Image::IndexType idx;
  EXPECT_TRUE(image->TransformPhysicalPointToIndex(p, idx));
  return {nlohmann::json::parse(r.out)["pixel_type"].get<std::string>(), image->GetPixel(idx)};
}

// CT-like data (signed 16-bit stored, intercept -1024) is written as int16 when the actual values
// allow, and as int32 when one does not: the header alone would always say int32.
TEST(SagittaCli, ConvertChoosesTheNarrowestExactIntegerType) {
  auto [type, value] = convert_marker(-1024, 3071);
  EXPECT_EQ(type, "int16");
  EXPECT_EQ(value, 3071.f);
  std::tie(type, value) = convert_marker(1024, 33000);  // stored 31976, rescaled beyond int16
  EXPECT_EQ(type, "int32");
  EXPECT_EQ(value, 33000.f);
}

}  // namespace

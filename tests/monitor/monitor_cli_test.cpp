// `sagitta monitor` end to end: three cohorts really segmented by `sagitta segment --cohort` from
// the shipped phantom CT series and the phantom model (a reference, a second undrifted cohort and a
// cohort whose intensities are shifted and scaled); monitor must alarm on the drifted one (exit 3)
// and not on the undrifted one (exit 0), and writes monitor.csv, PNG plots (under xvfb-run) and
// one self-contained monitor.html. Bad input: a folder without reports, a damaged report.json.
// Every number monitored comes from `sagitta segment` itself (labels, volumes and the qa section).
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <map>

#include "sagitta/core/volume_io.h"
#include "sagitta/dicom/open_volume.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using nlohmann::json;
using sagitta::testing::read_file;
using sagitta::testing::run_command;
using sagitta::testing::shell_quote;

constexpr int kStudies = 3;  // per cohort

fs::path work_dir() { return sagitta::testing::binary_dir() / "tests/monitor/monitor_cli_cohorts"; }

// Writes `kStudies` NRRD studies from the phantom series (intensity * scale + offset, with small
// per-study differences interleaved between the undrifted cohorts) and segments them as one cohort.
fs::path segment_cohort(const std::string& name, const sagitta::Image& ct, int first, double scale, double offset) {
  const fs::path dir = work_dir() / name, inputs = dir / "inputs", out = dir / "out";
  bool done = true;
  for (int k = 0; k < kStudies; ++k) done = done && fs::exists(out / fmt::format("{}{}", name, k) / "report.json");
  if (done) return out;  // segmented by an earlier test case of this run
  fs::create_directories(inputs);
  std::ofstream manifest(dir / "cohort.csv");
  manifest << "id,input\n";
  for (int k = 0; k < kStudies; ++k) {
    const int j = first + 2 * k;  // reference: 0, 2, 4; undrifted: 1, 3, 5
    const double s = scale * (1 + 0.004 * (j - 2.5)), o = offset + 3 * (j - 2.5);
    auto copy = sagitta::Image::New();
    copy->SetRegions(ct.GetLargestPossibleRegion());
    copy->CopyInformation(&ct);
    copy->Allocate();
    const std::size_t n = ct.GetLargestPossibleRegion().GetNumberOfPixels();
    for (std::size_t i = 0; i < n; ++i) copy->GetBufferPointer()[i] = float(ct.GetBufferPointer()[i] * s + o);
    const fs::path file = inputs / fmt::format("{}_{}.nrrd", name, k);
    sagitta::WriteOptions wo;
    wo.pixel_type = sagitta::OutputPixelType::Float;
    sagitta::write_volumes({copy}, file, wo);
    manifest << fmt::format("{}{},{}\n", name, k, file.string());
  }
  manifest.close();
  const auto r = run_command(shell_quote(sagitta::testing::sagitta_executable()) + " segment --no-progress --threads 2 --cohort " +
                             shell_quote(dir / "cohort.csv") + " --model " +
                             shell_quote(sagitta::testing::source_dir() / "testdata/models/phantom/model.json") + " -o " + shell_quote(out));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  for (int k = 0; k < kStudies; ++k)  // the review section (confidence, input statistics) monitor reads
    EXPECT_TRUE(json::parse(read_file(out / fmt::format("{}{}", name, k) / "report.json")).contains("qa"));
  return out;
}

class MonitorCli : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    // Each test case runs in its own process: the first segments the cohorts, the others find
    // every study's report.json there. A fresh build folder starts over.
    const auto ct = sagitta::dicom::open_volume(sagitta::testing::source_dir() / "testdata/demo/ct_phantom").volume;
    reference_ = segment_cohort("reference", *ct, 0, 1.0, 0.0);
    undrifted_ = segment_cohort("undrifted", *ct, 1, 1.0, 0.0);
    drifted_ = segment_cohort("drifted", *ct, 0, 1.15, 120.0);  // a scanner whose calibration moved
  }
  static std::string monitor(const std::string& args) {
    return shell_quote(sagitta::testing::sagitta_executable()) + " monitor " + args;
  }
  static std::map<std::string, std::map<std::string, std::string>> read_csv(const fs::path& p) {
    std::map<std::string, std::map<std::string, std::string>> rows;
    std::ifstream f(p);
    std::vector<std::string> header;
    for (std::string line; std::getline(f, line);) {
      std::vector<std::string> cells;
      std::string cell;
      bool quoted = false;
      for (char c : line) {
        if (c == '"') quoted = !quoted;
        else if (c == ',' && !quoted) cells.push_back(cell), cell.clear();
        else cell += c;
      }
      cells.push_back(cell);
      if (header.empty()) {
        header = cells;
        continue;
      }
      for (std::size_t k = 0; k < header.size() && k < cells.size(); ++k) rows[cells[0]][header[k]] = cells[k];
    }
    return rows;
  }
  static inline fs::path reference_, undrifted_, drifted_;
};

TEST_F(MonitorCli, AlarmsOnTheDriftedCohortAndWritesCsvPlotsAndHtml) {
  const fs::path out = work_dir() / "monitor_drifted";
  fs::remove_all(out);
  const auto r = run_command(monitor(shell_quote(drifted_) + " --reference " + shell_quote(reference_) + " -o " + shell_quote(out)));
  std::cout << r.out << r.err;
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  const auto rows = read_csv(out / "monitor.csv");
  ASSERT_TRUE(rows.count("input/intensity_median")) << read_file(out / "monitor.csv");
  const auto& median = rows.at("input/intensity_median");
  EXPECT_EQ(median.at("status"), "alarm");
  EXPECT_EQ(median.at("n"), std::to_string(kStudies));
  EXPECT_EQ(median.at("reference_n"), std::to_string(kStudies));
  EXPECT_DOUBLE_EQ(std::stod(median.at("ks_d")), 1.0);  // every drifted median above every reference one
  // Spacing and field of view did not move.
  EXPECT_EQ(rows.at("input/spacing_mm[0]").at("status"), "ok");
  EXPECT_DOUBLE_EQ(std::stod(rows.at("input/spacing_mm[0]").at("ks_d")), 0.0);
  const std::string html = read_file(out / "monitor.html");
  EXPECT_NE(html.find("<meta name=\"viewport\""), std::string::npos);
  EXPECT_EQ(html.find("http://"), std::string::npos);  // nothing to fetch
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("input/intensity_median"), std::string::npos);
  if (sagitta::testing::run_command("xdpyinfo >/dev/null 2>&1").exit_code == 0 || std::getenv("DISPLAY")) {
    EXPECT_TRUE(fs::exists(out / "plots/input_intensity_median_distribution.png"));
    EXPECT_NE(html.find("data:image/png;base64,"), std::string::npos);
  } else {
    EXPECT_NE(r.err.find("PNG plots skipped"), std::string::npos) << r.err;
    EXPECT_NE(html.find("<svg"), std::string::npos);
  }
}

TEST_F(MonitorCli, StaysQuietOnAnUndriftedCohort) {
  const fs::path out = work_dir() / "monitor_undrifted";
  fs::remove_all(out);
  const auto r = run_command(monitor(shell_quote(undrifted_) + " --reference " + shell_quote(reference_) + " -o " + shell_quote(out)));
  std::cout << r.out << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const auto& [quantity, row] : read_csv(out / "monitor.csv")) EXPECT_NE(row.at("status"), "alarm") << quantity;
}

// A study segmented from the DICOM series itself takes its time from StudyDate/StudyTime
// (20240102 100000 in the shipped series); NRRD inputs have none and use their report's write time.
TEST_F(MonitorCli, StudiesAreOrderedByStudyDateWhenTheReportHasOne) {
  const fs::path cohort = work_dir() / "dicom_cohort";
  if (!fs::exists(cohort / "demo/report.json")) {
    const auto s = run_command(shell_quote(sagitta::testing::sagitta_executable()) + " segment --no-progress --threads 2 " +
                               shell_quote(sagitta::testing::source_dir() / "testdata/demo/ct_phantom") + " --model " +
                               shell_quote(sagitta::testing::source_dir() / "testdata/models/phantom/model.json") + " -o " +
                               shell_quote(cohort / "demo"));
    ASSERT_EQ(s.exit_code, 0) << s.err;
  }
  const fs::path out = work_dir() / "monitor_dicom";
  fs::remove_all(out);
  const auto r = run_command(monitor(shell_quote(cohort) + " --reference " + shell_quote(reference_) + " --no-png -o " + shell_quote(out)));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;  // one current study: every quantity is "too few", nothing alarms
  const std::string studies = read_file(out / "studies.csv");
  EXPECT_NE(studies.find("current,demo," + cohort.string() + ",2024-01-02T10:00:00Z,study date"), std::string::npos) << studies;
  EXPECT_NE(studies.find("reference,reference0,"), std::string::npos) << studies;
  EXPECT_NE(studies.find("report written"), std::string::npos) << studies;
  for (const auto& [quantity, row] : read_csv(out / "monitor.csv")) EXPECT_EQ(row.at("status"), "too few") << quantity;
  EXPECT_NE(read_file(out / "monitor.html").find("2024-01-02 10:00:00"), std::string::npos);
}

TEST_F(MonitorCli, BadInputIsOneLineAndADamagedReportIsSkipped) {
  const fs::path empty = work_dir() / "empty";
  fs::create_directories(empty);
  auto r = run_command(monitor(shell_quote(empty) + " --reference " + shell_quote(reference_) + " -o " + shell_quote(work_dir() / "m1")));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("no report.json"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(work_dir() / "m1"));

  // A copy of the undrifted cohort with one damaged report.
  const fs::path damaged = work_dir() / "damaged";
  fs::remove_all(damaged);
  fs::copy(undrifted_, damaged, fs::copy_options::recursive);
  std::ofstream(damaged / "undrifted0/report.json") << "{\"labels\": [";
  r = run_command(monitor(shell_quote(damaged) + " --reference " + shell_quote(reference_) + " -o " + shell_quote(work_dir() / "m2")));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("undrifted0/report.json: skipped: is not valid JSON"), std::string::npos) << r.err;
  EXPECT_EQ(read_csv(work_dir() / "m2/monitor.csv").at("input/intensity_median").at("n"), std::to_string(kStudies - 1));

  r = run_command(monitor("-o " + shell_quote(work_dir() / "m3")));
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace

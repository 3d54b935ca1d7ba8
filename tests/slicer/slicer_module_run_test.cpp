// Every Sagitta Slicer module called the way 3D Slicer calls CLI modules: inputs written as NRRD
// into a temporary folder, arguments built from the module's own --xml (flags with their values
// first, then the index parameters in index order, booleans as bare flags), outputs at the paths
// given, --returnparameterfile for the return values, and progress lines on stdout.
#include <gtest/gtest.h>

#include <fmt/format.h>
#include <itkImageRegionIterator.h>
#include <itkImageRegionIteratorWithIndex.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include "sagitta/core/volume_io.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
using sagitta::testing::run_command;
using sagitta::testing::scratch_dir;

fs::path module_path(const std::string& name) { return fs::path(SAGITTA_SLICER_MODULE_DIR) / name; }

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

// The module's description, and how Slicer would pass each parameter according to it.
class Description {
public:
  explicit Description(const std::string& module) {
    const auto r = run_command(quoted(module_path(module)) + " --xml");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    xml_ = r.out;
  }
  // The <element>...</element> block of parameter `name` ("" if absent).
  std::string block(const std::string& name) const {
    const auto at = xml_.find("<name>" + name + "</name>");
    if (at == std::string::npos) return {};
    // Parameters are indented by 4 spaces, their children by 6 (modules/slicer/module_xml.cpp).
    const auto open = xml_.rfind("\n    <", at);
    const auto close = xml_.find("\n    </", at);
    return xml_.substr(open, close - open);
  }
  std::string field(const std::string& name, const std::string& tag) const {
    const std::regex re("<" + tag + ">([^<]*)</" + tag + ">");
    std::smatch m;
    const std::string b = block(name);
    return std::regex_search(b, m, re) ? m[1].str() : std::string();
  }
  bool is_boolean(const std::string& name) const { return block(name).find("<boolean") != std::string::npos; }
  const std::string& xml() const { return xml_; }

private:
  std::string xml_;
};

// Slicer's command line: every flagged parameter that has a value, in the order given, then the
// index parameters in index order. Booleans appear as the bare flag when true.
std::string slicer_command_line(const std::string& module, const std::vector<std::pair<std::string, std::string>>& values,
                                const std::vector<std::string>& extra = {}) {
  const Description d(module);
  std::string cmd = quoted(module_path(module));
  for (const auto& e : extra) cmd += " " + e;
  std::map<int, std::string> indexed;
  for (const auto& [name, value] : values) {
    EXPECT_FALSE(d.block(name).empty()) << module << " has no parameter " << name;
    const std::string index = d.field(name, "index");
    if (!index.empty()) {
      indexed[std::stoi(index)] = value;
      continue;
    }
    std::string flag = d.field(name, "longflag");
    flag = flag.empty() ? "-" + d.field(name, "flag") : "--" + flag;
    if (d.is_boolean(name)) {
      if (value == "true") cmd += " " + flag;
    } else {
      cmd += " " + flag + " '" + value + "'";
    }
  }
  for (const auto& [i, value] : indexed) cmd += " '" + value + "'";
  return cmd;
}

std::map<std::string, std::string> read_return_parameters(const fs::path& file) {
  std::map<std::string, std::string> values;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    const auto eq = line.find(" = ");
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 3);
  }
  return values;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, sep);) out.push_back(item);
  return out;
}

// Checks Slicer's progress protocol on stdout: start, progress values in [0, 1] that never go
// back, end; returns the number of progress lines.
int check_progress(const std::string& out) {
  EXPECT_NE(out.find("<filter-start>"), std::string::npos) << out;
  EXPECT_NE(out.find("<filter-name>"), std::string::npos) << out;
  EXPECT_NE(out.find("<filter-end>"), std::string::npos) << out;
  EXPECT_LT(out.find("<filter-start>"), out.find("<filter-end>"));
  const std::regex re("<filter-progress>([0-9.]+)</filter-progress>");
  double last = -1;
  int n = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it, ++n) {
    const double v = std::stod((*it)[1].str());
    EXPECT_GE(v, 0.0);
    EXPECT_LE(v, 1.0);
    EXPECT_GE(v, last) << "progress went back";
    last = v;
  }
  EXPECT_GE(n, 1) << out;
  EXPECT_DOUBLE_EQ(last, 1.0);
  return n;
}

int count_lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

std::vector<std::string> folder_entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Slicer's temporary folder with the demo CT written as NRRD, as Slicer writes scene volumes.
fs::path demo_ct_nrrd(const fs::path& dir) {
  const fs::path ct = dir / "ct.nrrd";
  const auto r = run_command(slicer_command_line("SagittaConvert", {{"inputs", (sagitta::testing::source_dir() / "testdata/demo/ct_phantom").string()},
                                                                    {"output", ct.string()}}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return ct;
}

TEST(SlicerModules, ConvertWritesTheVolumeWhereToldWithProgress) {
  const fs::path dir = scratch_dir();
  const fs::path out = dir / "vtkMRMLScalarVolumeNodeB.nrrd";
  const auto r = run_command(slicer_command_line(
      "SagittaConvert",
      {{"inputs", (sagitta::testing::source_dir() / "testdata/demo/ct_phantom").string()}, {"output", out.string()}, {"type", "float"}, {"compress", "true"}},
      {"--returnparameterfile", quoted(dir / "return.params"), "--processinformationaddress", "0x7ffd1234"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  check_progress(r.out);
  const auto volume = sagitta::read_volume(out);
  const auto size = volume->GetLargestPossibleRegion().GetSize();
  EXPECT_EQ(size[2], 40u);
  EXPECT_TRUE(fs::exists(dir / "return.params"));  // written even with no return values
}

TEST(SlicerModules, SegmentReturnsLabelMapAndPerLabelVolumes) {
  const fs::path dir = scratch_dir();
  const fs::path ct = demo_ct_nrrd(dir);
  const fs::path labels = dir / "vtkMRMLLabelMapVolumeNodeC.nrrd";
  const fs::path params = dir / "return.params";
  const auto r = run_command(slicer_command_line(
      "SagittaSegment",
      {{"model", (sagitta::testing::source_dir() / "testdata/models/demo/model.json").string()},
       {"outputLabel", labels.string()},
       {"threads", "2"},
       {"largest_component", "true"},
       {"inputs", ct.string()}},
      {"--returnparameterfile", quoted(params), "--echo"}));
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  check_progress(r.out);
  EXPECT_NE(r.out.find("inputs: " + ct.string()), std::string::npos) << "--echo prints the arguments\n" << r.out;

  // The label map is on the input's grid and holds the model's labels.
  const auto image = sagitta::read_volume(ct);
  const auto label_map = sagitta::read_volume(labels);
  EXPECT_EQ(label_map->GetLargestPossibleRegion().GetSize(), image->GetLargestPossibleRegion().GetSize());
  EXPECT_EQ(label_map->GetSpacing(), image->GetSpacing());
  EXPECT_EQ(label_map->GetOrigin(), image->GetOrigin());
  std::map<int, std::size_t> counts;
  itk::ImageRegionConstIterator<sagitta::Image> it(label_map, label_map->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) ++counts[int(it.Get())];
  ASSERT_GE(counts.size(), 2u) << "no foreground label";

  // Return values: one name and one volume per foreground label present, matching the map.
  const auto values = read_return_parameters(params);
  ASSERT_EQ(values.count("labelValues"), 1u);
  const auto label_values = split(values.at("labelValues"), ',');
  const auto names = split(values.at("labelNames"), ',');
  const auto volumes = split(values.at("labelVolumesMl"), ',');
  ASSERT_EQ(names.size(), label_values.size());
  ASSERT_EQ(volumes.size(), label_values.size());
  EXPECT_EQ(label_values.size() + 1, counts.size());
  const auto spacing = image->GetSpacing();
  const double voxel_ml = spacing[0] * spacing[1] * spacing[2] / 1000.0;
  for (std::size_t i = 0; i < label_values.size(); ++i) {
    const int value = std::stoi(label_values[i]);
    EXPECT_NEAR(std::stod(volumes[i]), double(counts[value]) * voxel_ml, 0.001 + 1e-6 * counts[value]) << names[i];
  }
  // Nothing but Slicer's files and the outputs in the folder: no staging left behind.
  EXPECT_EQ(folder_entries(dir), (std::vector<std::string>{"ct.nrrd", "return.params", labels.filename().string()}));
}

TEST(SlicerModules, MeshWritesAModelSlicerLoads) {
  const fs::path dir = scratch_dir();
  // A label map with two blocks, as Slicer writes a label map node.
  auto labels = sagitta::Image::New();
  sagitta::Image::SizeType size{{24, 20, 16}};
  labels->SetRegions(size);
  sagitta::Image::SpacingType spacing;
  spacing[0] = 1.5, spacing[1] = 1.5, spacing[2] = 2.0;
  labels->SetSpacing(spacing);
  labels->Allocate(true);
  itk::ImageRegionIteratorWithIndex<sagitta::Image> it(labels, labels->GetLargestPossibleRegion());
  for (; !it.IsAtEnd(); ++it) {
    const auto i = it.GetIndex();
    if (i[0] > 3 && i[0] < 10 && i[1] > 3 && i[1] < 14 && i[2] > 2 && i[2] < 12) it.Set(1);
    if (i[0] > 13 && i[0] < 20 && i[1] > 5 && i[1] < 12 && i[2] > 4 && i[2] < 10) it.Set(2);
  }
  sagitta::write_volumes({labels}, dir / "labels.nrrd", {});  // integer values: written as an integer type
  const fs::path out = dir / "vtkMRMLModelNodeD.vtp";
  const auto r = run_command(slicer_command_line("SagittaMesh", {{"input", (dir / "labels.nrrd").string()},
                                                                 {"output", out.string()},
                                                                 {"smoothing", "5"}}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  check_progress(r.out);
  std::ifstream f(out);
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_NE(text.str().find("<VTKFile type=\"PolyData\""), std::string::npos);
  EXPECT_NE(r.out.find("label 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("label 2"), std::string::npos) << r.out;
}

TEST(SlicerModules, BadInputIsOneLineAndNonZero) {
  const fs::path dir = scratch_dir();
  const std::string model = (sagitta::testing::source_dir() / "testdata/models/demo/model.json").string();
  fs::path broken = dir / "broken.nrrd";
  std::ofstream(broken) << "NRRD0004\ntype: banana\n";
  const fs::path out = dir / "labels.nrrd";
  struct Case {
    const char* what;
    std::string command;
    int exit_code;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"missing required parameter",
       slicer_command_line("SagittaSegment", {{"outputLabel", out.string()}, {"inputs", broken.string()}}), 2, "--model"},
      {"wrong enumeration",
       slicer_command_line("SagittaSegment", {{"model", model}, {"outputLabel", out.string()}, {"device", "tpu"}, {"inputs", broken.string()}}),
       2, "tpu"},
      {"boolean given a value (Slicer passes the bare flag)",
       slicer_command_line("SagittaSegment", {{"model", model}, {"outputLabel", out.string()}, {"inputs", broken.string()}}, {"--mirror", "true"}),
       2, "true"},
      {"unreadable image",
       slicer_command_line("SagittaSegment", {{"model", model}, {"outputLabel", out.string()}, {"inputs", broken.string()}}), 3,
       "broken.nrrd"},
      {"unreadable DICOM folder",
       slicer_command_line("SagittaConvert", {{"inputs", dir.string()}, {"output", (dir / "x.nrrd").string()}}), 3, ""},
      {"unknown output format", slicer_command_line("SagittaSegment", {{"model", model}, {"outputLabel", (dir / "x.png").string()},
                                                                        {"inputs", broken.string()}}), 2, "x.png"},
  };
  for (const auto& c : cases) {
    const auto r = run_command(c.command);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.what << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << c.what << ": " << r.err;
    EXPECT_NE(r.err.find("error"), std::string::npos) << c.what << ": " << r.err;
    EXPECT_NE(r.err.find(c.message), std::string::npos) << c.what << ": " << r.err;
    EXPECT_FALSE(fs::exists(out)) << c.what;
    EXPECT_FALSE(fs::exists(dir / "x.nrrd")) << c.what;
  }
  EXPECT_EQ(folder_entries(dir), (std::vector<std::string>{"broken.nrrd"}));
}

// Slicer's Cancel sends SIGTERM: the module stops during inference and leaves nothing behind.
TEST(SlicerModules, SigtermDuringSegmentLeavesNoOutput) {
  SAGITTA_REQUIRE_EXTERNAL(ct_source, "ct/totalsegmentator/example_ct_sm.nii.gz");
  const fs::path dir = scratch_dir();
  sagitta::write_volumes({sagitta::read_volume(ct_source)}, dir / "ct.nrrd", {});
  const fs::path labels = dir / "labels.nrrd";
  // Mirroring makes inference long enough to be interrupted in the middle.
  const std::string cmd = slicer_command_line(
      "SagittaSegment", {{"model", (sagitta::testing::source_dir() / "testdata/models/demo/model.json").string()},
                         {"outputLabel", labels.string()}, {"mirror", "true"}, {"overlap", "0.9"}, {"threads", "1"},
                         {"inputs", (dir / "ct.nrrd").string()}},
      {"--returnparameterfile", quoted(dir / "return.params")});

  int out_pipe[2];
  ASSERT_EQ(::pipe(out_pipe), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    // exec, not a shell child: SIGTERM must reach the module as it reaches it from Slicer.
    ::execl("/bin/sh", "sh", "-c", ("exec " + cmd + " 2>" + quoted(dir.parent_path() / "sigterm.err")).c_str(), nullptr);
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  // Wait until inference is under way (overall progress past the loading stages), then cancel.
  std::string out;
  char buffer[4096];
  bool in_inference = false;
  const std::regex re("<filter-progress>([0-9.]+)</filter-progress>");
  while (!in_inference) {
    const ssize_t n = ::read(out_pipe[0], buffer, sizeof(buffer));
    if (n <= 0) break;
    out.append(buffer, std::size_t(n));
    for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator(); ++it)
      if (std::stod((*it)[1].str()) > 0.2 && std::stod((*it)[1].str()) < 0.9) in_inference = true;
  }
  ASSERT_TRUE(in_inference) << "the module ended before inference was under way:\n" << out;
  const auto t0 = std::chrono::steady_clock::now();
  ::kill(pid, SIGTERM);
  while (::read(out_pipe[0], buffer, sizeof(buffer)) > 0) {
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(out_pipe[0]);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 4);  // kExitCancelled
  std::ifstream err_file(dir.parent_path() / "sigterm.err");
  std::string err((std::istreambuf_iterator<char>(err_file)), std::istreambuf_iterator<char>());
  EXPECT_EQ(err, "SagittaSegment: cancelled\n");
  EXPECT_EQ(folder_entries(dir), (std::vector<std::string>{"ct.nrrd"})) << "partial output left";
  std::cout << "stopped " << seconds << " s after SIGTERM\n";
}

}  // namespace

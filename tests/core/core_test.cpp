// The floor (sagitta::core): the failure policy, atomic files and staged output folders, colour
// maps, card labels.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "sagitta/core/atomic_output.h"
#include "sagitta/core/colormap.h"
#include "sagitta/core/error.h"
#include "sagitta/core/markup.h"
#include "sagitta/core/model_card.h"
#include "support/test_paths.h"

namespace fs = std::filesystem;

namespace {

sagitta::Failure failure_of(const std::function<void()>& f) {
  try {
    f();
  } catch (...) {
    return sagitta::describe_failure(std::current_exception());
  }
  ADD_FAILURE() << "no exception";
  return {};
}

std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST(FailurePolicy, EveryKindOfFailureHasOneExitCodeAndOneLine) {
  const fs::path dir = sagitta::testing::scratch_dir();
  std::ofstream(dir / "file") << "x";
  // A folder below a file: what an unwritable or mistyped output folder gives.
  const auto fs_failure = failure_of([&] { fs::create_directories(dir / "file" / "out"); });
  EXPECT_EQ(fs_failure.exit_code, sagitta::kExitData);
  EXPECT_NE(fs_failure.message.find((dir / "file" / "out").string()), std::string::npos) << fs_failure.message;
  EXPECT_EQ(fs_failure.message.find("filesystem error"), std::string::npos) << fs_failure.message;

  EXPECT_EQ(failure_of([] { throw sagitta::Error("bad\ninput\n"); }).message, "bad input");
  EXPECT_EQ(failure_of([] { throw sagitta::Error("x"); }).exit_code, sagitta::kExitData);
  EXPECT_EQ(failure_of([] { throw sagitta::UsageError("x"); }).exit_code, sagitta::kExitUsage);
  EXPECT_EQ(failure_of([] { throw sagitta::Cancelled(); }).exit_code, sagitta::kExitCancelled);
  EXPECT_EQ(failure_of([] { throw std::bad_alloc(); }).message, "out of memory");
  const auto bug = failure_of([] { throw std::logic_error("oops"); });
  EXPECT_EQ(bug.exit_code, sagitta::kExitInternal);
  EXPECT_EQ(bug.message, "unexpected failure: oops");
}

TEST(AtomicOutput, AFailedWriteLeavesNothing) {
  const fs::path dir = sagitta::testing::scratch_dir();
  EXPECT_THROW(sagitta::write_atomically(dir / "a.txt",
                                         [](const fs::path& tmp) {
                                           std::ofstream(tmp) << "half";
                                           throw sagitta::Error("disk full");
                                         }),
               sagitta::Error);
  EXPECT_TRUE(entries(dir).empty());
  sagitta::write_text_atomically(dir / "a.txt", "whole\n");
  EXPECT_EQ(entries(dir), std::vector<std::string>{"a.txt"});
  EXPECT_THROW(sagitta::check_output_file(dir / "missing" / "b.nrrd"), sagitta::Error);
  EXPECT_THROW(sagitta::check_output_file(dir), sagitta::Error);
}

TEST(StagedOutputs, AppearTogetherOrNotAtAll) {
  const fs::path dir = sagitta::testing::scratch_dir();
  {
    sagitta::StagedOutputs out(dir / "new");
    sagitta::write_text_atomically(out.add("labels.nrrd"), "1");
    EXPECT_TRUE(entries(dir / "new").size() == 1);  // only the hidden staging folder
  }
  EXPECT_FALSE(fs::exists(dir / "new")) << "a folder created for a failed run is removed";

  fs::create_directories(dir / "old");
  std::ofstream(dir / "old" / "keep.txt") << "mine";
  {
    sagitta::StagedOutputs out(dir / "old");
    sagitta::write_text_atomically(out.add("report.json"), "{}");
  }
  EXPECT_EQ(entries(dir / "old"), std::vector<std::string>{"keep.txt"});

  sagitta::StagedOutputs out(dir / "old");
  sagitta::write_text_atomically(out.add("report.json"), "{}");
  sagitta::write_text_atomically(out.add("sub/heatmap.nrrd"), "2");
  out.commit();
  EXPECT_EQ(entries(dir / "old"), (std::vector<std::string>{"keep.txt", "report.json", "sub"}));
  EXPECT_TRUE(fs::exists(dir / "old" / "sub" / "heatmap.nrrd"));

  std::ofstream(dir / "a_file") << "x";
  EXPECT_THROW(sagitta::StagedOutputs(dir / "a_file"), sagitta::Error);
}

TEST(ColourMaps, OneDefinitionForEveryPicture) {
  using sagitta::ColorMap;
  using Colour = std::array<unsigned char, 3>;
  EXPECT_EQ(sagitta::colour(ColorMap::Hot, 0.4), (Colour{255, 0, 0}));
  EXPECT_EQ(sagitta::colour(ColorMap::Hot, 1), (Colour{255, 255, 255}));
  EXPECT_EQ(sagitta::colour(ColorMap::Jet, 0.5), (Colour{128, 255, 128}));
  EXPECT_EQ(sagitta::colour(ColorMap::Viridis, 0.5), (Colour{33, 145, 140}));
  for (const char* name : {"hot", "jet", "inferno", "viridis"}) {
    const auto map = sagitta::parse_colormap(name);
    ASSERT_TRUE(map) << name;
    EXPECT_EQ(sagitta::colormap_name(*map), name);
    const auto c = sagitta::colour_rgb(*map, 0.3);
    EXPECT_EQ(sagitta::colour(*map, 0.3)[1], static_cast<unsigned char>(std::lround(c[1] * 255)));
  }
  EXPECT_FALSE(sagitta::parse_colormap("rainbow"));
}

TEST(CardLabels, ColourTablesNeedNoWeights) {
  const fs::path dir = sagitta::testing::scratch_dir();
  std::ofstream(dir / "labels.json") << R"({"labels": [{"value": 0}, {"value": 3, "name": "liver", "color": [10, 20, 30]},
                                                      {"value": 4}]})";
  const auto labels = sagitta::read_card_labels(dir / "labels.json");
  ASSERT_EQ(labels.size(), 3u);
  EXPECT_EQ(labels[1].name, "liver");
  EXPECT_TRUE(labels[1].color_given);
  EXPECT_EQ(labels[1].color, (std::array<int, 3>{10, 20, 30}));
  EXPECT_FALSE(labels[2].color_given);
  std::ofstream(dir / "bad.json") << R"({"labels": [{"value": 70000}]})";
  EXPECT_THROW(sagitta::read_card_labels(dir / "bad.json"), sagitta::Error);
}

// One escaper and one base64 encoder for every HTML page (sagitta/core/markup.h); base64 against
// Python's standard library.
TEST(Markup, Base64MatchesPythonAndEscapingKeepsPagesValid) {
  std::string bytes;
  for (int i = 0; i < 259; ++i) bytes += char((i * 37 + 11) & 0xFF);
  for (std::size_t n : {0u, 1u, 2u, 3u, 4u, 5u, 259u}) {
    const std::string part = bytes.substr(0, n);
    std::string hex;
    for (unsigned char c : part) {
      char two[3];
      std::snprintf(two, sizeof two, "%02x", c);
      hex += two;
    }
    const auto r = sagitta::testing::run_command(
        "/usr/bin/python3 -c \"import base64,sys; print(base64.b64encode(bytes.fromhex(sys.argv[1])).decode())\" '" + hex + "'");
    if (r.exit_code != 0) GTEST_SKIP() << "python3 not available: " << r.err;
    EXPECT_EQ(sagitta::base64(part) + "\n", r.out) << n << " bytes";
  }
  EXPECT_EQ(sagitta::html_escape("a<b>&\"'c"), "a&lt;b&gt;&amp;&quot;&#39;c");
  EXPECT_EQ(sagitta::html_escape("caf\xC3\xA9"), "caf\xC3\xA9");                        // valid UTF-8 kept
  EXPECT_EQ(sagitta::html_escape("x\xFFy\x01z"), "x\xEF\xBF\xBDy\xEF\xBF\xBDz");  // stray byte, control
}

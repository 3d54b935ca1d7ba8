// The listener's configuration and series rules (sagitta::node): orientation from
// ImageOrientationPatient, each selection criterion, and configuration files that are refused
// with a line naming the key. The series facts are read from the shipped demo series, whose
// header dcmdump shows (CT, CHEST, axial, 2.5 mm).
#include <gtest/gtest.h>

#include <fstream>

#include "sagitta/core/error.h"
#include "sagitta/node/config.h"
#include "sagitta/node/destination.h"
#include "support/test_paths.h"

namespace {
namespace fs = std::filesystem;
namespace st = sagitta::testing;
using namespace sagitta::node;

const fs::path kCard = st::source_dir() / "testdata" / "models" / "phantom" / "model.json";

TEST(ListenRules, OrientationIsTheAxisClosestToTheSliceNormal) {
  const double x[3] = {1, 0, 0}, y[3] = {0, 1, 0}, z[3] = {0, 0, -1};
  EXPECT_EQ(orientation_name(x, y), "axial");
  EXPECT_EQ(orientation_name(y, z), "sagittal");
  EXPECT_EQ(orientation_name(x, z), "coronal");
  // Tilted by 20 degrees about left-right: still axial.
  const double tilted[3] = {0, 0.9397, -0.3420};
  EXPECT_EQ(orientation_name(x, tilted), "axial");
}

TEST(ListenRules, FactsOfTheDemoSeries) {
  const SeriesFacts f = read_series_facts(st::source_dir() / "testdata" / "demo" / "ct_phantom");
  EXPECT_EQ(f.modality, "CT");
  EXPECT_EQ(f.body_part, "CHEST");
  EXPECT_EQ(f.orientation, "axial");
  ASSERT_TRUE(f.slice_thickness_mm);
  EXPECT_DOUBLE_EQ(*f.slice_thickness_mm, 2.5);
  EXPECT_EQ(f.instances, 40u);
  EXPECT_EQ(f.description, "CT phantom: body, organ, bone");
}

TEST(ListenRules, EachCriterionSelectsOrSaysWhyNot) {
  SeriesFacts f;
  f.modality = "CT";
  f.body_part = "CHEST";
  f.description = "Thorax 1.0 B31f";
  f.orientation = "axial";
  f.slice_thickness_mm = 1.0;
  Rule r;
  EXPECT_EQ(mismatch(r, f), "");  // no criteria: everything
  r.modalities = {"ct", "PT"};
  r.body_parts = {"chest"};
  r.orientations = {"axial"};
  r.description_regex = "thorax.*b3[01]f";
  r.min_thickness_mm = 0.5;
  r.max_thickness_mm = 1.5;
  EXPECT_EQ(mismatch(r, f), "");
  Rule mr = r;
  mr.modalities = {"MR"};
  EXPECT_EQ(mismatch(mr, f), "modality CT is not MR");
  Rule sag = r;
  sag.orientations = {"sagittal", "coronal"};
  EXPECT_EQ(mismatch(sag, f), "orientation axial is not sagittal/coronal");
  Rule thick = r;
  thick.min_thickness_mm = 2.0;
  EXPECT_EQ(mismatch(thick, f), "slice thickness 1 mm is outside [2, 1.5]");
  Rule desc = r;
  desc.description_regex = "^lung";
  EXPECT_EQ(mismatch(desc, f), "series description does not match");  // the description itself is not logged
  Rule part = r;
  part.body_parts = {"HEAD"};
  EXPECT_EQ(mismatch(part, f), "body part CHEST is not HEAD");
  SeriesFacts no_thickness = f;
  no_thickness.slice_thickness_mm.reset();
  EXPECT_EQ(mismatch(r, no_thickness), "no slice thickness");
}

fs::path write(const std::string& text) {
  const fs::path p = st::scratch_dir() / "node.json";
  std::ofstream(p) << text;
  return p;
}

TEST(ListenRules, ConfigurationIsReadWithPathsRelativeToItsFile) {
  const fs::path p = write(R"({"ae_title": "NODE", "port": 11200, "spool": "spool", "quiet_seconds": 5,
    "concurrency": 2, "destination": {"type": "dimse", "ae_title": "PACS", "host": "10.0.0.1", "port": 104},
    "rules": [{"name": "ct-chest", "modality": "CT", "orientation": ["axial"], "slice_thickness_mm": [null, 3],
               "model": ")" + kCard.string() + R"(", "outputs": ["seg", "sr"], "seg_type": "labelmap"}]})");
  const NodeConfig c = load_node_config(p);
  EXPECT_EQ(c.ae_title, "NODE");
  EXPECT_EQ(c.port, 11200);
  EXPECT_EQ(c.spool, p.parent_path() / "spool");
  EXPECT_EQ(c.concurrency, 2);
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_EQ(c.rules[0].modalities, std::vector<std::string>{"CT"});
  EXPECT_FALSE(c.rules[0].min_thickness_mm);
  EXPECT_EQ(*c.rules[0].max_thickness_mm, 3.0);
  EXPECT_TRUE(c.rules[0].seg && c.rules[0].sr && !c.rules[0].rtstruct);
  EXPECT_EQ(c.rules[0].seg_type, "labelmap");
  EXPECT_EQ(c.destination.settings["host"], "10.0.0.1");
}

TEST(ListenRules, BadConfigurationsNameTheKey) {
  const std::string model = kCard.string();
  const std::string good_rule = R"({"name": "r", "model": ")" + model + R"("})";
  const std::string head = R"({"spool": "s", "destination": {"port": 104}, )";
  const std::vector<std::pair<std::string, std::string>> cases{
      {"{", "not JSON"},
      {R"({"destination": {}, "rules": [)" + good_rule + "]}", "spool"},
      {head + R"("rules": []})", "rules"},
      {head + R"("rulez": []})", "unknown key 'rulez'"},
      {head + R"("rules": [{"name": "r"}]})", "rules[0].model"},
      {head + R"("rules": [{"name": "r", "model": "missing.json"}]})", "does not exist"},
      {head + R"("rules": [{"name": "r", "model": ")" + model + R"(", "orientation": "oblique"}]})", "oblique"},
      {head + R"("rules": [{"name": "r", "model": ")" + model + R"(", "series_description": "(["}]})", "regular expression"},
      {head + R"("rules": [{"name": "../x", "model": ")" + model + R"("}]})", "name"},
      {head + R"("rules": [{"name": "r", "model": ")" + model + R"(", "outputs": ["png"]}]})", "outputs 'png'"},
      {head + R"("port": "x", "rules": [)" + good_rule + "]}", "wrong type"},
      {head + R"("concurrency": 0, "rules": [)" + good_rule + "]}", "concurrency"},
      {head + R"("rules": [)" + good_rule + "," + good_rule + "]}", "two rules"},
  };
  for (const auto& [text, expected] : cases) {
    try {
      load_node_config(write(text));
      ADD_FAILURE() << "accepted: " << text;
    } catch (const sagitta::Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << text << "\n" << e.what();
    }
  }
}

TEST(ListenRules, DestinationsNameWhatIsWrong) {
  using sagitta::node::Destination;
  const std::vector<std::pair<Destination, std::string>> cases{
      {{"dicomweb", nlohmann::json::object()}, "url"},
      {{"dicomweb", {{"url", "ftp://pacs/dicom-web"}}}, "url"},
      {{"dicomweb", {{"url", "http://pacs/dicom-web"}, {"timeout_seconds", 0}}}, "timeouts"},
      {{"dicomweb", {{"url", "http://pacs/dicom-web"}, {"token", 7}}}, "wrong type"},
      {{"dimse", {{"port", 0}}}, "port"},
      {{"pigeon", nlohmann::json::object()}, "dimse or dicomweb"},
  };
  for (const auto& [destination, expected] : cases) {
    try {
      sagitta::node::make_destination(destination);
      ADD_FAILURE() << "accepted: " << destination.type << " " << destination.settings.dump();
    } catch (const sagitta::Error& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << destination.settings.dump() << "\n" << e.what();
    }
  }
  const auto stow = sagitta::node::make_destination({"dicomweb", {{"url", "https://u:secret@pacs.example/dicom-web"}}});
  EXPECT_EQ(stow->name().find("secret"), std::string::npos) << stow->name();
}

}  // namespace

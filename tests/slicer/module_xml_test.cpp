// The module description emitter on small tables: the element order and types Slicer's parser
// expects, and the tables it must refuse rather than describe wrongly.
#include <gtest/gtest.h>

#include "module_xml.h"

namespace {
using namespace sagitta::cli;
using sagitta::slicer::module_xml;

CommandSpec small_spec() {
  CommandSpec s;
  s.name = "demo";
  s.title = "Demo <module>";
  s.description = "Tests & checks";
  Parameter in = positional("input", ParamType::Image, 0, "Input", "Volume");
  Parameter out = option("outputLabel", ParamType::LabelImage, "outputLabel", "Labels", "Label map");
  out.channel = Channel::Output;
  out.flag = "o";
  Parameter n = option("count", ParamType::Integer, "count", "Count", "How many", "3");
  n.minimum = 0;
  n.maximum = 10;
  Parameter f = option("weights", ParamType::DoubleVector, "weights", "Weights", "Per axis", "1,1,2");
  Parameter e = choice("mode", "mode", {"fast", "exact"}, "exact", "Mode", "How");
  Parameter b = switch_option("mirror", "mirror", "Mirror", "Flip");
  Parameter hidden = switch_option("json", "json", "JSON", "CLI only");
  hidden.slicer = false;
  Parameter result;
  result.name = "volumes";
  result.type = ParamType::FloatVector;
  result.channel = Channel::Output;
  result.label = "Volumes";
  s.groups.push_back({"IO", "", {in, out}});
  s.groups.push_back({"Options", "Tuning", {n, f, e, b, hidden}, true});
  s.groups.push_back({"Hidden", "", {hidden}});
  s.groups.push_back({"Results", "", {result}});
  return s;
}

std::string xml() { return module_xml(small_spec(), {"1.2.3"}); }

std::size_t at(const std::string& text, const std::string& what, std::size_t from = 0) {
  const auto p = text.find(what, from);
  EXPECT_NE(p, std::string::npos) << what << "\n" << text;
  return p;
}

TEST(ModuleXml, ExecutableFieldsInOrder) {
  const std::string x = xml();
  EXPECT_EQ(x.rfind("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<executable>", 0), 0u);
  std::size_t p = 0;
  for (const char* tag : {"<category>Sagitta</category>", "<title>Demo &lt;module&gt;</title>",
                          "<description>Tests &amp; checks</description>", "<version>1.2.3</version>",
                          "<documentation-url>", "<license>", "<contributor>", "<acknowledgements>", "<parameters>"})
    p = at(x, tag, p) + 1;
}

TEST(ModuleXml, ParametersTypedAndOrdered) {
  const std::string x = xml();
  // Image with its type and channel; index for the positional, flag/longflag for the option.
  std::size_t p = at(x, "<image type=\"scalar\">");
  p = at(x, "<name>input</name>", p);
  p = at(x, "<index>0</index>", p);
  p = at(x, "<description>Volume</description>", p);
  p = at(x, "<label>Input</label>", p);
  p = at(x, "<channel>input</channel>", p);
  p = at(x, "<image type=\"label\">", p);
  p = at(x, "<flag>o</flag>", p);
  p = at(x, "<longflag>outputLabel</longflag>", p);
  p = at(x, "<channel>output</channel>", p);
  // Advanced group; constraints after default; integers step by one.
  p = at(x, "<parameters advanced=\"true\">", p);
  p = at(x, "<label>Options</label>", p);
  p = at(x, "<description>Tuning</description>", p);
  p = at(x, "<integer>", p);
  p = at(x, "<default>3</default>", p);
  p = at(x, "<constraints>\n        <minimum>0</minimum>\n        <maximum>10</maximum>\n        <step>1</step>", p);
  p = at(x, "<double-vector>", p);
  p = at(x, "<default>1,1,2</default>", p);
  p = at(x, "<string-enumeration>", p);
  p = at(x, "<default>exact</default>\n      <element>fast</element>\n      <element>exact</element>", p);
  p = at(x, "<boolean>", p);
  p = at(x, "<default>false</default>", p);
  // The return value: output channel, no flag, no index.
  p = at(x, "<float-vector>\n      <name>volumes</name>\n      <description>Volumes</description>\n      "
            "<label>Volumes</label>\n      <channel>output</channel>\n    </float-vector>", p);
  // Command-line-only parameters and the groups they leave empty are not shown.
  EXPECT_EQ(x.find("json"), std::string::npos);
  EXPECT_EQ(x.find("Hidden"), std::string::npos);
}

TEST(ModuleXml, RefusesTablesSlicerCannotRead) {
  auto expect_refused = [](CommandSpec s, const std::string& why) {
    EXPECT_THROW(module_xml(s, {"1"}), std::invalid_argument) << why;
  };
  CommandSpec s = small_spec();
  s.groups[1].parameters[0].longflag = "max-count";
  expect_refused(s, "a hyphen in a long flag");
  s = small_spec();
  s.groups[0].parameters[0].index = 1;
  expect_refused(s, "index gap");
  s = small_spec();
  s.groups[0].parameters[0].longflag = "input";
  expect_refused(s, "index and flag");
  s = small_spec();
  s.groups[1].parameters[2].default_value = "slow";
  expect_refused(s, "enumeration default not an element");
  s = small_spec();
  s.groups[0].parameters[1].channel = Channel::None;
  expect_refused(s, "image without channel");
  s = small_spec();
  s.groups[1].parameters[0].longflag = "outputLabel";
  expect_refused(s, "duplicate flag");
  s = small_spec();
  s.groups[3].parameters[0].channel = Channel::Input;
  expect_refused(s, "no flag, no index, not an output");
  s = small_spec();
  s.groups[3].parameters[0].type = ParamType::Image;
  expect_refused(s, "return value that is a file");
  s = small_spec();
  s.groups[0].parameters[0].name = "2nd";
  expect_refused(s, "name not an identifier");
}

}  // namespace

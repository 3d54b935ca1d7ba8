// The module description 3D Slicer reads from a CLI module's `--xml` (SlicerExecutionModel),
// generated from a command's parameter table (the declarations and their contract: module_xml.h).
#include "module_xml.h"

#include <fmt/format.h>

#include <set>
#include <stdexcept>

namespace sagitta::slicer {
namespace {

using cli::Channel;
using cli::Parameter;
using cli::ParamType;

// Slicer's parser accepts names and long flags made of letters, digits and underscores that do
// not start with a digit (it refuses "crop-body"), and a short flag of one such character.
bool identifier(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

bool is_file_like(ParamType t) {
  return t == ParamType::Image || t == ParamType::LabelImage || t == ParamType::File || t == ParamType::Directory ||
         t == ParamType::Geometry;
}

bool is_numeric(ParamType t) {
  return t == ParamType::Integer || t == ParamType::Float || t == ParamType::Double ||
         t == ParamType::IntegerVector || t == ParamType::FloatVector || t == ParamType::DoubleVector;
}

// Shortest text that reads back as the same double ("0.95", "256").
std::string number(double v) { return fmt::format("{}", v); }

class Writer {
public:
  void open(const std::string& tag, const std::string& attributes = "") {
    line("<" + tag + attributes + ">");
    ++depth_;
  }
  void close(const std::string& tag) {
    --depth_;
    line("</" + tag + ">");
  }
  void element(const std::string& tag, const std::string& text) { line("<" + tag + ">" + xml_escape(text) + "</" + tag + ">"); }
  std::string str() const { return out_; }

private:
  void line(const std::string& s) { out_ += std::string(std::size_t(depth_) * 2, ' ') + s + "\n"; }
  std::string out_ = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";
  int depth_ = 0;
};

std::string attribute(const std::string& name, const std::string& value) {
  return " " + name + "=\"" + xml_escape(value) + "\"";
}

void write_parameter(Writer& w, const Parameter& p, const std::string& where) {
  const std::string at = where + " parameter '" + p.name + "'";
  if (!identifier(p.name)) throw std::invalid_argument(at + ": the name must be a C identifier for Slicer");
  if (!p.flag.empty() && (p.flag.size() != 1 || !identifier(p.flag)))
    throw std::invalid_argument(at + ": the short flag must be one letter");
  if (!p.longflag.empty() && !identifier(p.longflag))
    throw std::invalid_argument(at + ": long flag '" + p.longflag + "' has characters Slicer refuses (use camelCase)");
  if (p.index >= 0 && (!p.flag.empty() || !p.longflag.empty()))
    throw std::invalid_argument(at + ": has both an index and a flag");
  if (p.index < 0 && p.flag.empty() && p.longflag.empty() && p.channel != Channel::Output)
    throw std::invalid_argument(at + ": needs a flag, an index, or the output channel (a return value)");
  if (p.is_return_value() && is_file_like(p.type))
    throw std::invalid_argument(at + ": a return value cannot be a file; give it a flag");
  if (p.type == ParamType::StringEnumeration && p.enumeration.empty())
    throw std::invalid_argument(at + ": an enumeration without elements");

  std::string attributes;
  if (p.type == ParamType::Image) attributes += attribute("type", "scalar");
  if (p.type == ParamType::LabelImage) attributes += attribute("type", "label");
  if (p.type == ParamType::Geometry) attributes += attribute("type", "model");
  if (p.multiple) attributes += attribute("multiple", "true");
  if (!p.reference.empty()) attributes += attribute("reference", p.reference);
  if (!p.file_extensions.empty()) attributes += attribute("fileExtensions", p.file_extensions);

  // Order of the children: name, flag, longflag | index, description, label, default, channel,
  // then constraints (numbers) or the elements (enumerations).
  const std::string tag = element_name(p.type);
  w.open(tag, attributes);
  w.element("name", p.name);
  if (!p.flag.empty()) w.element("flag", p.flag);
  if (!p.longflag.empty()) w.element("longflag", p.longflag);
  if (p.index >= 0) w.element("index", std::to_string(p.index));
  w.element("description", p.description.empty() ? (p.label.empty() ? p.name : p.label) : p.description);
  w.element("label", p.label.empty() ? p.name : p.label);
  std::string default_value = p.default_value;
  if (p.type == ParamType::Boolean && default_value.empty()) default_value = "false";
  if (p.type == ParamType::StringEnumeration) {
    if (default_value.empty()) default_value = p.enumeration.front();
    bool listed = false;
    for (const auto& e : p.enumeration) listed = listed || e == default_value;
    if (!listed) throw std::invalid_argument(at + ": default '" + default_value + "' is not one of its elements");
  }
  if (!default_value.empty()) w.element("default", default_value);
  if (p.channel != Channel::None) w.element("channel", p.channel == Channel::Input ? "input" : "output");
  else if (is_file_like(p.type)) throw std::invalid_argument(at + ": a file, folder or image needs a channel");
  if (is_numeric(p.type) && (p.minimum || p.maximum || p.step)) {
    w.open("constraints");
    if (p.minimum) w.element("minimum", number(*p.minimum));
    if (p.maximum) w.element("maximum", number(*p.maximum));
    // Slicer builds a slider from the constraints; integers move by one unless told otherwise.
    if (p.step) w.element("step", number(*p.step));
    else if (p.type == ParamType::Integer || p.type == ParamType::IntegerVector) w.element("step", "1");
    w.close("constraints");
  }
  if (p.type == ParamType::StringEnumeration)
    for (const auto& e : p.enumeration) w.element("element", e);
  w.close(tag);
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '&': out += "&amp;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string element_name(ParamType type) {
  switch (type) {
    case ParamType::Image:
    case ParamType::LabelImage: return "image";
    case ParamType::File: return "file";
    case ParamType::Directory: return "directory";
    case ParamType::String: return "string";
    case ParamType::StringEnumeration: return "string-enumeration";
    case ParamType::Integer: return "integer";
    case ParamType::Float: return "float";
    case ParamType::Boolean: return "boolean";
    case ParamType::Double: return "double";
    case ParamType::IntegerVector: return "integer-vector";
    case ParamType::FloatVector: return "float-vector";
    case ParamType::DoubleVector: return "double-vector";
    case ParamType::StringVector: return "string-vector";
    case ParamType::Geometry: return "geometry";
  }
  throw std::invalid_argument("unknown parameter type");
}

std::string module_xml(const cli::CommandSpec& spec, const ModuleInfo& info) {
  if (spec.title.empty() || spec.description.empty())
    throw std::invalid_argument("command '" + spec.name + "': Slicer needs a title and a description");
  Writer w;
  w.open("executable");
  w.element("category", spec.category);
  w.element("title", spec.title);
  w.element("description", spec.description);
  w.element("version", info.version);
  w.element("documentation-url", info.documentation_url);
  w.element("license", info.license);
  w.element("contributor", info.contributor);
  w.element("acknowledgements", info.acknowledgements);
  std::set<std::string> names, flags;
  std::set<int> indices;
  int groups = 0;
  for (const auto& g : spec.groups) {
    std::vector<const Parameter*> shown;
    for (const auto& p : g.parameters)
      if (p.slicer) shown.push_back(&p);
    if (shown.empty()) continue;  // a group of command-line-only options
    ++groups;
    w.open("parameters", g.advanced ? attribute("advanced", "true") : "");
    w.element("label", g.label);
    w.element("description", g.description.empty() ? g.label : g.description);
    for (const Parameter* p : shown) {
      const std::string where = "command '" + spec.name + "'";
      if (!names.insert(p->name).second) throw std::invalid_argument(where + ": parameter name '" + p->name + "' twice");
      if (!p->longflag.empty() && !flags.insert("--" + p->longflag).second)
        throw std::invalid_argument(where + ": long flag '" + p->longflag + "' twice");
      if (!p->flag.empty() && !flags.insert("-" + p->flag).second)
        throw std::invalid_argument(where + ": flag '" + p->flag + "' twice");
      if (p->index >= 0 && !indices.insert(p->index).second)
        throw std::invalid_argument(where + ": index " + std::to_string(p->index) + " twice");
      write_parameter(w, *p, where);
    }
    w.close("parameters");
  }
  if (groups == 0) throw std::invalid_argument("command '" + spec.name + "': no parameter for Slicer");
  // Slicer hands index parameters over in index order after the flags: 0..n-1 without gaps.
  int expected = 0;
  for (int i : indices)
    if (i != expected++) throw std::invalid_argument("command '" + spec.name + "': indices must be 0, 1, 2... without gaps");
  w.close("executable");
  return w.str();
}

}  // namespace sagitta::slicer

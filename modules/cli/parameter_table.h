#pragma once
// One declaration per command parameter. The same table drives the `sagitta` command line
// (parsing, --help) and 3D Slicer's module description (--xml), so every field Slicer's
// SlicerExecutionModel needs is here: type, flag/longflag or index, label, description,
// default, constraints and channel.
#include <map>
#include <set>
#include <optional>
#include <string>
#include <vector>

namespace sagitta::cli {

enum class ParamType {
  Image,              // a volume file (Slicer: <image type="scalar">)
  LabelImage,         // a label map file (Slicer: <image type="label">)
  File,               // any file (Slicer: <file>)
  Directory,          // a folder (Slicer: <directory>)
  String,
  StringEnumeration,  // one of `enumeration`
  Integer,
  Float,
  Boolean,            // a flag without a value
  // Also expressible in Slicer's module description, for tables that need them:
  Double,             // <double>
  IntegerVector,      // <integer-vector>: one argument, comma-separated ("1,2,3")
  FloatVector,        // <float-vector>
  DoubleVector,       // <double-vector>
  StringVector,       // <string-vector>
  Geometry,           // a surface mesh file (Slicer: <geometry type="model">, loaded as a model node)
};

enum class Channel { None, Input, Output };

struct Parameter {
  std::string name;           // identifier: key for the handler and Slicer's <name>
  ParamType type = ParamType::String;
  std::string flag;           // short flag without '-', may be empty
  std::string longflag;       // long flag without "--"; empty for positional parameters
  int index = -1;             // position (0-based) for positional parameters
  std::string default_value;  // as text; empty: no default
  std::string label;          // short human name (Slicer GUI)
  std::string description;
  Channel channel = Channel::None;
  std::vector<std::string> enumeration;
  std::optional<double> minimum, maximum, step;
  bool required = false;
  bool multiple = false;      // a positional that takes every remaining value
  bool slicer = true;         // false: command-line only (e.g. --json), not shown to Slicer
  std::string file_extensions;  // Slicer's fileExtensions attribute, e.g. ".nrrd" (files Slicer writes or reads)
  std::string reference;        // Slicer's reference attribute: an output image takes this input's geometry

  // A "simple return parameter" in Slicer's terms: an output with no flag and no index, reported
  // through --returnparameterfile instead of being passed on the command line.
  bool is_return_value() const { return channel == Channel::Output && flag.empty() && longflag.empty() && index < 0; }
};

// Builders for the common shapes of parameters; adjust other fields afterwards where needed.
// A positional input (or output) by index.
Parameter positional(std::string name, ParamType type, int index, std::string label, std::string description,
                     Channel channel = Channel::Input);
// Any parameter by its common fields (positional when `longflag` is empty: set index then).
Parameter parameter(const std::string& name, ParamType type, const std::string& longflag, const std::string& default_value,
                    const std::string& label, const std::string& description);
// A `--longflag VALUE` option.
Parameter option(std::string name, ParamType type, std::string longflag, std::string label, std::string description,
                 std::string default_value = "");
// A `--longflag` switch, off by default.
Parameter switch_option(std::string name, std::string longflag, std::string label, std::string description);
// `p` with a minimum and, when given, a maximum (Slicer's <constraints>, checked when parsing).
Parameter ranged(Parameter p, double minimum, std::optional<double> maximum = std::nullopt);
// A `--longflag CHOICE` option with its allowed values.
Parameter choice(std::string name, std::string longflag, std::vector<std::string> values, std::string default_value,
                 std::string label, std::string description);

struct ParameterGroup {
  std::string label, description;
  std::vector<Parameter> parameters;
  bool advanced = false;
};

struct CommandSpec {
  std::string name;         // subcommand, e.g. "convert"
  std::string title;        // Slicer module title, e.g. "Sagitta Convert"
  std::string description;  // one paragraph
  std::string category = "Sagitta";
  std::vector<ParameterGroup> groups;

  const Parameter* find(const std::string& name) const;
};

// A command's table with its name, Slicer title and description; add the groups afterwards.
CommandSpec command_spec(std::string name, std::string title, std::string description);

// Parsed values by parameter name; defaults applied. Typed accessors convert the text that
// the command line already validated.
class Arguments {
public:
  void set(const std::string& name, std::vector<std::string> values) { values_[name] = std::move(values); }
  bool has(const std::string& name) const;
  // Given on the command line (not a default filled in); the binding marks these.
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  void mark_given(const std::string& name) { given_.insert(name); }
  std::string text(const std::string& name) const;               // "" when absent
  std::vector<std::string> list(const std::string& name) const;  // empty when absent
  long integer(const std::string& name) const;
  double real(const std::string& name) const;
  bool flag(const std::string& name) const;

private:
  std::map<std::string, std::vector<std::string>> values_;
  std::set<std::string> given_;
};

}  // namespace sagitta::cli

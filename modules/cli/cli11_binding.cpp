// Binds a CommandSpec to a CLI11 subcommand: options, positionals, validators and help text all
// come from the parameter table (the declarations and their contract: cli11_binding.h).
#include "cli11_binding.h"

#include <fmt/format.h>

namespace sagitta::cli {
namespace {

std::string type_name(ParamType t) {
  switch (t) {
    case ParamType::Image: return "VOLUME";
    case ParamType::LabelImage: return "LABELS";
    case ParamType::File: return "FILE";
    case ParamType::Directory: return "DIR";
    case ParamType::String: return "TEXT";
    case ParamType::StringEnumeration: return "CHOICE";
    case ParamType::Integer: return "INT";
    case ParamType::Float: return "FLOAT";
    case ParamType::Boolean: return "";
    case ParamType::Double: return "FLOAT";
    case ParamType::IntegerVector: return "INT,INT,...";
    case ParamType::FloatVector:
    case ParamType::DoubleVector: return "FLOAT,FLOAT,...";
    case ParamType::StringVector: return "TEXT,TEXT,...";
    case ParamType::Geometry: return "MESH";
  }
  return "";
}

// Slicer passes vectors as one comma-separated argument; every element must be a number.
const CLI::Validator& comma_separated_numbers() {
  static const CLI::Validator v(
      [](std::string& text) -> std::string {
        std::size_t start = 0;
        while (true) {
          const std::size_t comma = text.find(',', start);
          std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
          double value = 0;
          if (item.empty() || !CLI::detail::lexical_cast(item, value))
            return "'" + text + "' is not a comma-separated list of numbers";
          if (comma == std::string::npos) return {};
          start = comma + 1;
        }
      },
      "NUMBERS");
  return v;
}

}  // namespace

Binding::Binding(CLI::App& app, const CommandSpec& spec) : spec_(spec) {
  // Positionals first, in index order, so CLI11 assigns them in that order.
  std::vector<const Parameter*> params;
  for (const auto& g : spec.groups)
    for (const auto& p : g.parameters) params.push_back(&p);
  std::stable_sort(params.begin(), params.end(), [](const Parameter* a, const Parameter* b) {
    return (a->index < 0 ? 1 << 20 : a->index) < (b->index < 0 ? 1 << 20 : b->index);
  });
  for (const Parameter* p : params) {
    if (p->is_return_value()) continue;  // reported by the command, never given on the command line
    if (p->type == ParamType::Boolean) {
      std::string names = "--" + p->longflag;
      if (!p->flag.empty()) names = "-" + p->flag + "," + names;
      flags_[p->name] = false;
      app.add_flag(names, flags_[p->name], p->description);
      continue;
    }
    std::string names = p->index >= 0 ? p->name : "--" + p->longflag;
    if (p->index < 0 && !p->flag.empty()) names = "-" + p->flag + "," + names;
    auto& storage = raw_[p->name];
    CLI::Option* opt = app.add_option(names, storage, p->description);
    opt->type_name(type_name(p->type));
    // One value, and no more: CLI11 lets options with vector storage swallow the following
    // arguments, so `--threads 2 input.nrrd` (Slicer's order: flags first, then positionals) would
    // take the positional as a second value.
    if (!p->multiple) opt->expected(1)->allow_extra_args(false);
    if (p->required) opt->required();
    if (!p->default_value.empty()) opt->default_str(p->default_value);
    switch (p->type) {
      case ParamType::Integer: opt->check(CLI::Number); break;
      case ParamType::Float: opt->check(CLI::Number); break;
      case ParamType::Double: opt->check(CLI::Number); break;
      case ParamType::IntegerVector:
      case ParamType::FloatVector:
      case ParamType::DoubleVector: opt->check(comma_separated_numbers()); break;
      case ParamType::StringEnumeration: opt->check(CLI::IsMember(p->enumeration)); break;
      default: break;
    }
    if (p->minimum || p->maximum)
      opt->check(CLI::Range(p->minimum.value_or(std::numeric_limits<double>::lowest()),
                            p->maximum.value_or(std::numeric_limits<double>::max())));
    if (p->channel == Channel::Input &&
        (p->type == ParamType::Image || p->type == ParamType::LabelImage || p->type == ParamType::File ||
         p->type == ParamType::Geometry))
      opt->check(CLI::ExistingPath);
  }
}

void Binding::finish(Arguments& args) const {
  for (const auto& g : spec_.groups)
    for (const auto& p : g.parameters) {
      if (p.is_return_value()) continue;
      if (p.type == ParamType::Boolean) {
        args.set(p.name, {flags_.at(p.name) ? "true" : "false"});
        continue;
      }
      const auto& values = raw_.at(p.name);
      if (!values.empty()) {
        args.set(p.name, values);
        args.mark_given(p.name);
      }
      else if (!p.default_value.empty())
        args.set(p.name, {p.default_value});
    }
}

}  // namespace sagitta::cli

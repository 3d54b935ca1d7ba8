// One declaration per command parameter (the declarations and their contract: parameter_table.h).
#include "parameter_table.h"

#include <stdexcept>

namespace sagitta::cli {

Parameter positional(std::string name, ParamType type, int index, std::string label, std::string description,
                     Channel channel) {
  Parameter p;
  p.name = std::move(name);
  p.type = type;
  p.index = index;
  p.required = true;
  p.channel = channel;
  p.label = std::move(label);
  p.description = std::move(description);
  return p;
}

Parameter parameter(const std::string& name, ParamType type, const std::string& longflag, const std::string& default_value,
                    const std::string& label, const std::string& description) {
  Parameter p;
  p.name = name;
  p.type = type;
  p.longflag = longflag;
  p.default_value = default_value;
  p.label = label;
  p.description = description;
  return p;
}

Parameter option(std::string name, ParamType type, std::string longflag, std::string label, std::string description,
                 std::string default_value) {
  Parameter p;
  p.name = std::move(name);
  p.type = type;
  p.longflag = std::move(longflag);
  p.label = std::move(label);
  p.description = std::move(description);
  p.default_value = std::move(default_value);
  return p;
}

CommandSpec command_spec(std::string name, std::string title, std::string description) {
  CommandSpec s;
  s.name = std::move(name);
  s.title = std::move(title);
  s.description = std::move(description);
  return s;
}

Parameter ranged(Parameter p, double minimum, std::optional<double> maximum) {
  p.minimum = minimum;
  p.maximum = maximum;
  return p;
}

Parameter switch_option(std::string name, std::string longflag, std::string label, std::string description) {
  Parameter p = option(std::move(name), ParamType::Boolean, std::move(longflag), std::move(label),
                       std::move(description), "false");
  return p;
}

Parameter choice(std::string name, std::string longflag, std::vector<std::string> values, std::string default_value,
                 std::string label, std::string description) {
  Parameter p = option(std::move(name), ParamType::StringEnumeration, std::move(longflag), std::move(label),
                       std::move(description), std::move(default_value));
  p.enumeration = std::move(values);
  return p;
}

const Parameter* CommandSpec::find(const std::string& name) const {
  for (const auto& g : groups)
    for (const auto& p : g.parameters)
      if (p.name == name) return &p;
  return nullptr;
}

bool Arguments::has(const std::string& name) const {
  auto it = values_.find(name);
  return it != values_.end() && !it->second.empty();
}

std::string Arguments::text(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() || it->second.empty() ? std::string() : it->second.front();
}

std::vector<std::string> Arguments::list(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

long Arguments::integer(const std::string& name) const {
  const std::string t = text(name);
  return t.empty() ? 0 : std::stol(t);
}

double Arguments::real(const std::string& name) const {
  const std::string t = text(name);
  return t.empty() ? 0.0 : std::stod(t);
}

bool Arguments::flag(const std::string& name) const {
  const std::string t = text(name);
  return t == "true" || t == "1" || t == "on" || t == "yes";
}

}  // namespace sagitta::cli

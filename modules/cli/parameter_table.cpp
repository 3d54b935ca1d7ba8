#include "parameter_table.h"

#include <stdexcept>

namespace sagitta::cli {

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

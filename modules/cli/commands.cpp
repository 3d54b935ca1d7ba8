#include <CLI/CLI.hpp>

#include <stdexcept>

#include "cli11_binding.h"
#include "command.h"

namespace sagitta::cli {

std::vector<Command> all_commands() {
  std::vector<Command> all;
  for (auto&& list : {dicom_commands(), segmentation_commands(), explain_commands(), training_commands(), viewer_commands(), pacs_commands(), demo_commands(), wsi_commands()})
    for (auto& c : list) all.push_back(c);
  return all;
}

int run_command_line(const std::string& name, const std::vector<std::string>& args) {
  const std::vector<Command> commands = all_commands();
  for (const auto& c : commands) {
    if (c.spec.name != name) continue;
    CLI::App app{c.spec.description};
    app.name(name);
    Binding binding(app, c.spec);
    try {
      app.parse(std::vector<std::string>(args.rbegin(), args.rend()));  // CLI11 takes the list reversed
    } catch (const CLI::ParseError& e) {
      throw std::invalid_argument("sagitta " + name + ": " + e.what());
    }
    Arguments parsed;
    binding.finish(parsed);
    return c.run(parsed);
  }
  throw std::invalid_argument("no command named " + name);
}

}  // namespace sagitta::cli

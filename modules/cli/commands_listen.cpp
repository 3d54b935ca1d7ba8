// `sagitta listen`: the DICOM node (sagitta::node). Runs until SIGTERM or SIGINT, then stops
// cleanly (exit 0): no new associations, running segmentations ended, the queue kept for the
// next start.
#include <fmt/format.h>

#include <cstdlib>
#include <iostream>

#include "command.h"
#include "progress.h"
#include "sagitta/node/config.h"
#include "sagitta/node/node.h"

namespace sagitta::cli {
namespace {

CommandSpec listen_spec() {
  CommandSpec s = command_spec("listen", "Sagitta Listen",
      "Runs a DICOM node: receives studies by C-STORE, waits until a study has been quiet for a while, chooses "
      "models for its series by rules (modality, body part, description, orientation, slice thickness), segments "
      "them and sends the DICOM SEG / SR / RTSTRUCT to a destination, through a persistent queue that survives a "
      "kill (docs/listen.md).");
  Parameter config = positional("config", ParamType::File, 0, "Configuration", "The node's JSON configuration (docs/listen.md)");
  config.required = true;
  Parameter port = ranged(option("port", ParamType::Integer, "port", "Port", "Listen on this port instead of the configuration's (0: the configuration's)", "0"), 0, 65535);
  Parameter phi = switch_option("log_phi", "log-phi", "Log patient data",
                                "Also log each completed study's patient name and ID (by default logs carry UIDs only)");
  std::vector<Parameter> all{config, port, phi};
  for (auto& p : all) p.slicer = false;
  s.groups.push_back({"Node", "", all});
  return s;
}

int run_listen(const Arguments& a) {
  node::NodeConfig config = node::load_node_config(a.text("config"));
  if (a.integer("port") != 0) config.port = static_cast<int>(a.integer("port"));
  node::NodeOptions o;
  o.log_phi = a.flag("log_phi");
  const char* front = std::getenv("SAGITTA_FRONT");  // set by the `sagitta` front
  if (front && *front) o.sagitta_program = front;
  o.stop = [] { return cancel_requested(); };
  o.log = [](const std::string& line) { std::cerr << "sagitta listen: " << line << std::endl; };
  node::run_node(config, o);
  return kExitOk;
}

}  // namespace

std::vector<Command> listen_commands() { return {{listen_spec(), run_listen}}; }

}  // namespace sagitta::cli

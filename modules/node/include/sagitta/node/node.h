#pragma once
// `sagitta listen`: a DICOM node that receives studies (C-STORE), waits until a study is quiet,
// chooses models for its series by the configured rules, segments each chosen series by running
// `sagitta segment` as a child process, and sends the results to the destination, through the
// persistent queue of sagitta/node/spool.h. Guarantees and folder states: docs/listen.md.
#include <functional>
#include <string>

#include "sagitta/node/config.h"

namespace sagitta::node {

struct NodeOptions {
  bool log_phi = false;  // also log patient name and ID of each completed study
  std::string sagitta_program = "sagitta";  // run as `<program> segment ...`
  std::function<bool()> stop;  // polled; true ends the node cleanly
  std::function<void(const std::string&)> log;  // one line without a newline
};

// Runs until options.stop() returns true. Throws sagitta::Error when it cannot start (port in use,
// spool not writable, bad destination).
void run_node(const NodeConfig& config, const NodeOptions& options);

}  // namespace sagitta::node

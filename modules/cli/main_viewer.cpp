// sagitta-viewer: render, view, mesh, monitor and report; VTK, no LibTorch.
#include "run_main.h"

int main(int argc, char** argv) {
  using namespace sagitta::cli;
  std::vector<Command> commands = viewer_commands();
  for (const auto& c : monitor_commands()) commands.push_back(c);
  for (const auto& c : report_commands()) commands.push_back(c);
  return run_main(argc, argv, commands);
}

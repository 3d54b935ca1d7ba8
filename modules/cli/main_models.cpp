// sagitta-models: the commands that run networks (segment, explain, train, wsi) and the demo;
// LibTorch, no VTK.
#include "run_main.h"

int main(int argc, char** argv) {
  using namespace sagitta::cli;
  keep_freed_memory();
  std::vector<Command> commands;
  for (auto&& list : {segmentation_commands(), explain_commands(), training_commands(), wsi_commands(), demo_commands()})
    for (const auto& c : list) commands.push_back(c);
  return run_main(argc, argv, commands);
}

// sagitta-dicom: info, convert, pacs, dicomweb and listen; linked without LibTorch and VTK, so it starts like a
// small tool (the `sagitta` front execs it).
#include "run_main.h"

int main(int argc, char** argv) {
  using namespace sagitta::cli;
  std::vector<Command> commands = dicom_commands();
  for (auto& c : pacs_commands()) commands.push_back(std::move(c));
  for (auto& c : listen_commands()) commands.push_back(std::move(c));
  for (auto& c : dicomweb_commands()) commands.push_back(std::move(c));
  return run_main(argc, argv, commands);
}

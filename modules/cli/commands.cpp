#include "command.h"

namespace sagitta::cli {

std::vector<Command> all_commands() {
  std::vector<Command> all;
  for (auto&& list : {dicom_commands(), segmentation_commands(), explain_commands(), training_commands(), viewer_commands(), pacs_commands()})
    for (auto& c : list) all.push_back(c);
  return all;
}

}  // namespace sagitta::cli

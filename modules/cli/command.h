#pragma once
// A `sagitta` subcommand: its parameter table and the function that runs it.
#include <functional>
#include <vector>

#include "parameter_table.h"
#include "sagitta/core/error.h"

namespace sagitta::cli {

// Exit codes shared by every command and the Slicer modules: the floor's one policy
// (sagitta/core/error.h).
using sagitta::ExitCode;
using sagitta::kExitCancelled;
using sagitta::kExitData;
using sagitta::kExitInternal;
using sagitta::kExitOk;
using sagitta::kExitUsage;

struct Command {
  CommandSpec spec;
  std::function<int(const Arguments&)> run;
};

// Per command file (commands_<area>.cpp). Each Sagitta executable runs one area's lists and
// links only what they need (modules/CMakeLists.txt): sagitta-dicom neither LibTorch nor VTK,
// sagitta-models no VTK, sagitta-viewer no LibTorch.
std::vector<Command> dicom_commands();         // sagitta-dicom: info, convert
std::vector<Command> pacs_commands();          // sagitta-dicom: pacs (echo, find, get, move, store)
std::vector<Command> listen_commands();        // sagitta-dicom: listen (the DICOM node)
std::vector<Command> dicomweb_commands();      // sagitta-dicom: dicomweb (query, retrieve, store)
std::vector<Command> segmentation_commands();  // sagitta-models: segment
std::vector<Command> explain_commands();       // sagitta-models: explain
std::vector<Command> training_commands();      // sagitta-models: train
std::vector<Command> wsi_commands();           // sagitta-models: wsi (segment, info, train-demo)
std::vector<Command> demo_commands();          // sagitta-models: demo, the whole pipeline through `sagitta`
std::vector<Command> viewer_commands();        // sagitta-viewer: render, view, mesh
std::vector<Command> monitor_commands();       // sagitta-viewer: monitor (cohort drift; VTK charts)
std::vector<Command> report_commands();        // sagitta-viewer: report (a study's or cohort's HTML page)

}  // namespace sagitta::cli

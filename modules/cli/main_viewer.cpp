// sagitta-viewer: render, view and mesh; VTK, no LibTorch.
#include "run_main.h"

int main(int argc, char** argv) { return sagitta::cli::run_main(argc, argv, sagitta::cli::viewer_commands()); }

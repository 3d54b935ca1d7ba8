#pragma once
// Debian's VTK renders through X only. Without a display VTK aborts the process, so every
// rendering entry point checks first and throws a ViewerError that says what to do.
#include <string>

namespace sagitta::viewer {

// True when $DISPLAY names an X server that accepts a connection.
bool display_available();
// Throws ViewerError naming Xvfb (and `hint`, e.g. "use `sagitta render` for pictures") when
// there is no display.
void require_display(const std::string& hint = "");

// One X connection for the whole process, opened on first use and never closed: VTK 9.1 with
// Mesa cannot reopen a display after a render window closed its own, so every window here uses
// this one (vtkRenderWindow::SetDisplayId). Throws like require_display when there is none.
void* shared_display();

}  // namespace sagitta::viewer

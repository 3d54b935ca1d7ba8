// Debian's VTK renders through X only (the declarations and their contract:
// sagitta/viewer/display.h).
#include "sagitta/viewer/display.h"

#include <X11/Xlib.h>
// The object factories (OpenGL2 render window, FreeType text, interactor styles, GPU volume
// mapper) register from any object file compiled with VTK's autoinit definitions that includes a
// module header. Every rendering path calls shared_display(), so this file always links in and
// registers them, even for programs that create VTK windows themselves.
#include <vtkRenderingCoreModule.h>
#include <vtkRenderingVolumeModule.h>

#include <cstdlib>

#include "sagitta/viewer/error.h"

namespace sagitta::viewer {

namespace {
// VTK aborts when it cannot open the display, so the connection is tried here first. It is
// opened once and kept: with Debian's VTK 9.1 and Mesa, closing a connection and opening another
// in the same process fails ("bad X server connection").
Display* connection() {
  static Display* display = [] {
    const char* name = std::getenv("DISPLAY");
    return (name && *name) ? XOpenDisplay(nullptr) : nullptr;
  }();
  return display;
}
}  // namespace

bool display_available() { return connection() != nullptr; }

void require_display(const std::string& hint) {
  if (display_available()) return;
  const char* name = std::getenv("DISPLAY");
  std::string message = (name && *name) ? "cannot open the X display '" + std::string(name) + "'"
                                        : std::string("no X display (DISPLAY is not set)");
  message += "; VTK here renders through X only: run under a virtual display, e.g. `xvfb-run -a sagitta ...`";
  if (!hint.empty()) message += ", or " + hint;
  throw ViewerError(message);
}

void* shared_display() {
  require_display();
  return connection();
}

}  // namespace sagitta::viewer

#pragma once
// The module description 3D Slicer reads from a CLI module's `--xml` (SlicerExecutionModel),
// generated from a command's parameter table. The rules it follows are written down in
// modules/slicer/README.md ("Module description rules"); tests/slicer checks every module against
// them.
#include <string>

#include "parameter_table.h"

namespace sagitta::slicer {

// The <executable> fields that are not in the parameter table.
struct ModuleInfo {
  std::string version;
  std::string documentation_url = "https://github.com/sagitta-imaging/sagitta#3d-slicer";
  std::string license = "Apache-2.0";
  std::string contributor = "The Sagitta developers";
  std::string acknowledgements =
      "Built on ITK, VTK, DCMTK and LibTorch. Research software: not for clinical use.";
};

// The Slicer element name of a parameter type ("image", "string-enumeration", ...).
std::string element_name(cli::ParamType type);

// The whole description, starting with the XML declaration. Parameters with `slicer == false`
// are left out, and so are groups left empty by that. Throws std::invalid_argument when the table
// cannot be expressed (a parameter without flag, index or output channel; a name that is not an
// identifier).
std::string module_xml(const cli::CommandSpec& spec, const ModuleInfo& info);

// Text escaped for XML character data and attribute values.
std::string xml_escape(const std::string& text);

}  // namespace sagitta::slicer

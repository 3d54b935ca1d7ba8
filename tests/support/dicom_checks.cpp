#include "support/dicom_checks.h"

#include <fmt/format.h>

#include <sstream>

#include "support/test_paths.h"

namespace sagitta::testing {

IodCheck dciodvfy(const std::filesystem::path& file) {
  IodCheck check;
  if (run_command("command -v dciodvfy").exit_code != 0) return check;
  check.installed = true;
  const auto r = run_command("dciodvfy " + shell_quote(file));
  check.report = r.out + r.err;  // dciodvfy reports on stderr
  std::istringstream lines(check.report);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("Error", 0) == 0) ++check.errors;
  return check;
}

std::string python_with(const std::string& modules) {
  std::string imports;
  std::istringstream names(modules);
  for (std::string m; names >> m;) imports += (imports.empty() ? "import " : ", ") + m;
  for (const char* candidate : {"/usr/bin/python3", "python3"})
    if (run_command(fmt::format("{} -c '{}' 2>/dev/null", candidate, imports)).exit_code == 0) return candidate;
  return "";
}

}  // namespace sagitta::testing

// The failure policy: exception -> exit code and one line (see sagitta/core/error.h).
#include "sagitta/core/error.h"

#include <itkMacro.h>

#include <algorithm>
#include <filesystem>
#include <new>

namespace sagitta {

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

namespace {

// "cannot create directories: /a/b: Permission denied" rather than libstdc++'s
// "filesystem error: cannot create directories: Permission denied [/a/b]".
std::string filesystem_message(const std::filesystem::filesystem_error& e) {
  std::string what = e.what();
  const std::string prefix = "filesystem error: ";
  if (what.rfind(prefix, 0) == 0) what = what.substr(prefix.size());
  const std::string reason = e.code().message();
  const auto at = what.find(": " + reason);
  std::string action = at == std::string::npos ? what : what.substr(0, at);
  std::string paths;
  if (!e.path1().empty()) paths += e.path1().string();
  if (!e.path2().empty()) paths += " -> " + e.path2().string();
  return paths.empty() ? action + ": " + reason : action + ": " + paths + ": " + reason;
}

}  // namespace

Failure describe_failure(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Cancelled&) {
    return {kExitCancelled, "cancelled"};
  } catch (const UsageError& x) {
    return {kExitUsage, one_line(x.what())};
  } catch (const Error& x) {
    return {kExitData, one_line(x.what())};
  } catch (const std::filesystem::filesystem_error& x) {
    return {kExitData, one_line(filesystem_message(x))};
  } catch (const itk::ExceptionObject& x) {
    return {kExitData, one_line(x.GetDescription())};
  } catch (const std::bad_alloc&) {
    return {kExitData, "out of memory"};
  } catch (const std::exception& x) {
    return {kExitInternal, one_line(std::string("unexpected failure: ") + x.what())};
  } catch (...) {
    return {kExitInternal, "unexpected failure"};
  }
}

}  // namespace sagitta

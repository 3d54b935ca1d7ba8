#pragma once
// The error base every Sagitta library derives its own error type from, and the one policy that
// turns any failure into an exit code and a single line for the user (the `sagitta` commands and
// the 3D Slicer modules both use it).
#include <exception>
#include <stdexcept>
#include <string>

namespace sagitta {

// A failure the user can act on: bad or unreadable input, an unwritable output, a refused
// request. The message names the file, series or option and says what to do.
class Error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// A request that cannot be carried out as given (options that contradict each other, a missing
// option): exit code 2, like a bad command line.
class UsageError : public Error {
public:
  using Error::Error;
};

// Thrown by work that stopped because cancellation was requested (SIGTERM/SIGINT, Slicer's
// cancel button); whoever staged outputs has removed them.
class Cancelled : public Error {
public:
  Cancelled() : Error("cancelled") {}
};

// Exit codes of every executable.
enum ExitCode : int {
  kExitOk = 0,
  kExitInternal = 1,   // a bug: an unexpected exception
  kExitUsage = 2,      // bad command line
  kExitData = 3,       // unreadable/invalid input data, unwritable output, out of memory
  kExitCancelled = 4,  // stopped by SIGTERM/SIGINT; nothing partial was left behind
};

struct Failure {
  int exit_code = kExitInternal;
  std::string message;  // one line, no trailing newline
};

// What the exception `e` means for the process: Cancelled -> 4; UsageError -> 2; Error, filesystem
// errors (an
// unwritable or missing folder), ITK exceptions and bad_alloc -> 3; anything else -> 1 with
// "unexpected failure: ...".
Failure describe_failure(const std::exception_ptr& e);

// `s` on one line: newlines become spaces, trailing spaces go.
std::string one_line(std::string s);

}  // namespace sagitta

// Errors a user can act on: one line naming the file or option and what is wrong.
#pragma once

#include <stdexcept>
#include <string>

namespace amalgam {

/// A user-facing error; `what()` is a single line that names the culprit.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// The first line of `text`: LibTorch and JSON messages run on with backtraces and context. For a
/// TorchScript interpreter failure, the cause at the end of its traceback.
std::string first_line(const std::string& text);

}  // namespace amalgam

/// Throws amalgam::Error(message) when `condition` is false. The message expression is evaluated
/// only then, so checks inside the training step cost one branch, not a string per call.
#define AMALGAM_CHECK(condition, ...)                                   \
  do {                                                                  \
    if (!(condition)) throw ::amalgam::Error(std::string(__VA_ARGS__)); \
  } while (0)

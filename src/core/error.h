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

/// The first line of `text`: LibTorch and JSON messages run on with backtraces and context.
std::string first_line(const std::string& text);

/// Throws Error(message) when `condition` is false.
void require(bool condition, const std::string& message);

}  // namespace amalgam

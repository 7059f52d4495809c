#include "core/error.h"

namespace amalgam {

std::string first_line(const std::string& text) {
  const std::string first = text.substr(0, text.find('\n'));
  // The TorchScript interpreter's first line only says that something failed; the cause (the
  // model's own exception, e.g. "AssertionError: Wrong image height!") is its last line.
  if (first.find("failed in the TorchScript interpreter") == std::string::npos) return first;
  size_t end = text.find_last_not_of(" \n");
  if (end == std::string::npos) return first;
  const size_t begin = text.rfind('\n', end);
  const std::string cause = text.substr(begin == std::string::npos ? 0 : begin + 1,
                                        end + 1 - (begin == std::string::npos ? 0 : begin + 1));
  return "the TorchScript code failed: " + cause.substr(cause.find_first_not_of(' '));
}

}  // namespace amalgam

#include "core/error.h"

namespace amalgam {

void require(bool condition, const std::string& message) {
  if (!condition) throw Error(message);
}

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace amalgam

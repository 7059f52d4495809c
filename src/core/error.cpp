#include "core/error.h"

namespace amalgam {

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace amalgam

#include "core/error.h"

namespace amalgam {

void require(bool condition, const std::string& message) {
  if (!condition) throw Error(message);
}

}  // namespace amalgam

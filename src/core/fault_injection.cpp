#include "core/fault_injection.h"

#include <csignal>
#include <cstdlib>
#include <filesystem>

namespace amalgam {

namespace {

const std::string& fault() {
  static const std::string value = [] {
    const char* text = std::getenv("AMALGAM_FAULT");
    return std::string(text != nullptr ? text : "");
  }();
  return value;
}

}  // namespace

void fault_point(const char* point) {
  const std::string& f = fault();
  if (f.empty()) return;
  const std::string prefix = std::string(point) + ":";
  if (f.compare(0, prefix.size(), prefix) != 0) return;
  const std::string action = f.substr(prefix.size());
  if (action == "KILL") std::raise(SIGKILL);
  if (action == "TERM") std::raise(SIGTERM);
}

bool fault_fails_write(const std::string& path) {
  const std::string& f = fault();
  return !f.empty() && f == "write:" + std::filesystem::path(path).filename().string();
}

}  // namespace amalgam

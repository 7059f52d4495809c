#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>

namespace amalgam {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
}

void set_log_level(LogLevel level) {
  g_level = static_cast<int>(level);
}

void log_info(const std::string& line) {
  if (g_level >= static_cast<int>(LogLevel::kInfo)) std::fprintf(stderr, "%s\n", line.c_str());
}

void log_warning(const std::string& line) {
  std::fprintf(stderr, "warning: %s\n", line.c_str());
}

void log_verbose(const std::string& line) {
  if (g_level >= static_cast<int>(LogLevel::kVerbose)) std::fprintf(stderr, "%s\n", line.c_str());
}

double now_seconds() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  if (s >= 3600)
    return std::to_string(s / 3600) + "h" + (s % 3600 / 60 < 10 ? "0" : "") +
           std::to_string(s % 3600 / 60) + "m";
  if (s >= 60)
    return std::to_string(s / 60) + "m" + (s % 60 < 10 ? "0" : "") + std::to_string(s % 60) + "s";
  return std::to_string(s) + "s";
}

}  // namespace amalgam

// Progress and diagnostics. Messages go to stderr so stdout stays for results (tables, JSON).
#pragma once

#include <string>

namespace amalgam {

/// How much is printed.
enum class LogLevel { kQuiet = 0, kInfo = 1, kVerbose = 2 };

/// Sets the process-wide log level (default kInfo).
void set_log_level(LogLevel level);

/// Prints one line at kInfo.
void log_info(const std::string& line);

/// Prints "warning: " + line at every level, quiet included: something the user should act on.
void log_warning(const std::string& line);

/// Prints one line at kVerbose.
void log_verbose(const std::string& line);

/// "1h02m", "3m10s", "42s": a duration for progress lines.
std::string duration_text(double seconds);

/// Seconds since an arbitrary fixed point (a monotonic clock).
double now_seconds();

}  // namespace amalgam

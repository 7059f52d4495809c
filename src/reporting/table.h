// Plain-text tables for the terminal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace amalgam {

/// Formats rows under a header with columns padded to align; the first column left-aligned,
/// the rest right-aligned.
std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows);

/// 0.9234 -> "92.34".
std::string percent(double fraction);

/// 1234567 -> "1,234,567".
std::string thousands(int64_t value);

/// 12.345 -> "12.3 s".
std::string seconds_text(double seconds);

}  // namespace amalgam

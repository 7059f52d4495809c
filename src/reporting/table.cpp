#include "reporting/table.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace amalgam {

std::string format_table(const std::vector<std::string>& header,
                         const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < row.size() && c < widths.size(); ++c)
      widths[c] = std::max(widths[c], row[c].size());
  };
  widen(header);
  for (const auto& row : rows) widen(row);
  std::ostringstream out;
  auto emit = [&](const std::vector<std::string>& row) {
    for (size_t c = 0; c < widths.size(); ++c) {
      const std::string cell = c < row.size() ? row[c] : "";
      const std::string pad(widths[c] - cell.size(), ' ');
      out << (c ? "  " : "") << (c == 0 ? cell + pad : pad + cell);
    }
    out << "\n";
  };
  emit(header);
  size_t total = 0;
  for (size_t w : widths) total += w;
  out << std::string(total + 2 * (widths.size() - 1), '-') << "\n";
  for (const auto& row : rows) emit(row);
  return out.str();
}

std::string percent(double fraction) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.2f", 100.0 * fraction);
  return buffer;
}

std::string thousands(int64_t value) {
  std::string digits = std::to_string(value < 0 ? -value : value);
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return (value < 0 ? "-" : "") + digits;
}

std::string seconds_text(double seconds) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f s", seconds);
  return buffer;
}

}  // namespace amalgam

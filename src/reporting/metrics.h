// metrics.jsonl: one JSON object per line, appended and flushed as a run goes, so a person (or
// the report) can follow a run that is still going, or one that crashed.
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace amalgam {

/// Appends JSON lines to a file.
class MetricsLog {
 public:
  /// Opens `path` for appending (a resumed run continues its file); throws Error naming it.
  explicit MetricsLog(const std::string& path);
  /// Writes `record` as one line and flushes it.
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace amalgam

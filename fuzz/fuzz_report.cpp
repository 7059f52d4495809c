// libFuzzer target: what `report` reads. The input is config.json, metrics.jsonl and
// embedding.json separated by NUL bytes; whatever parse_run_files accepts must render without an
// exception (the checks cover every key the report reads), the rest end in amalgam::Error.
#include <cstdint>
#include <string>

#include "core/error.h"
#include "reporting/report.h"
#include "reporting/run_files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string parts[3];
  size_t begin = 0;
  for (int i = 0; i < 3 && begin <= input.size(); ++i) {
    const size_t end = i == 2 ? input.size() : std::min(input.find('\0', begin), input.size());
    parts[i] = input.substr(begin, end - begin);
    begin = end + 1;
  }
  amalgam::RunFiles files;
  try {
    files = amalgam::parse_run_files(parts[0], parts[1], parts[2], "RUN");
  } catch (const amalgam::Error&) {
    return 0;
  }
  (void)amalgam::render_report(files.config, files.metrics, files.embedding);
  return 0;
}

// What `report` reads from a run directory: config.json, metrics.jsonl and embedding.json,
// checked record by record, so that a damaged or hand-edited file stops the report with one line
// naming the file, the line and the key instead of a JSON library message or a wrong chart.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "reporting/metrics_records.h"

namespace amalgam {

/// A run directory's report inputs, every key the report reads present with its type.
struct RunFiles {
  nlohmann::json config;               ///< config.json
  std::vector<MetricsRecord> metrics;  ///< metrics.jsonl, one record per non-empty line
  nlohmann::json embedding;            ///< embedding.json (an empty object when absent)
};

/// The files of `run_dir` (parse_run_files, a run in progress when one holds its lock); throws
/// Error when config.json is missing.
RunFiles read_run_files(const std::string& run_dir);

/// The report inputs from the files' contents (`embedding` "" = no embedding.json); throws Error
/// naming the file in `run_dir`, the line and the key for anything the report cannot draw. With
/// `run_in_progress` (a run holds the folder's lock) an unterminated last metrics line, a record
/// being written, is left out.
RunFiles parse_run_files(const std::string& config, const std::string& metrics,
                         const std::string& embedding, const std::string& run_dir,
                         bool run_in_progress = false);

}  // namespace amalgam

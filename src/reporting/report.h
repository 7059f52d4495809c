// The run report: one self-contained HTML file with inline SVG charts, built from a run
// directory's config.json, metrics.jsonl and embedding.json.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "reporting/metrics_records.h"

namespace amalgam {

/// Renders the report of a run: loss terms over steps, per-task validation accuracy per epoch
/// with each teacher's accuracy as a reference line, the results table, and 2-D PCA maps of the
/// student's and teachers' features (raw and in the common space) coloured by class.
std::string render_report(const nlohmann::json& config, const std::vector<MetricsRecord>& metrics,
                          const nlohmann::json& embedding);

/// The report of `amalgam reproduce` (its JSON, reproduce_json): per benchmark, a bar chart of
/// each row's mean accuracy per task with the seeds' standard deviation, and the table.
std::string render_reproduce_report(const nlohmann::json& results);

/// Reads RUN_DIR's files and writes RUN_DIR/report.html atomically; returns its path. Throws
/// Error naming the directory when it holds no run.
std::string write_report(const std::string& run_dir);

}  // namespace amalgam

// The records of metrics.jsonl, each defined once: the run writes them and `report` reads them
// through the two functions below, so the file's schema is spelled in one place.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace amalgam {

/// Numbers by name: loss terms, or accuracies in [0, 1] by task ("union", "routing" besides).
using Scores = std::map<std::string, double>;

/// Every --log-every steps: where the run stands and that step's loss terms.
struct StepMetrics {
  int64_t epoch = 0;             ///< 1-based epoch
  int64_t step = 0;              ///< 1-based step within the epoch
  int64_t global_step = 0;       ///< 1-based step over the run
  Scores loss;                   ///< every loss term, "total" included
  std::vector<double> lrs;       ///< learning rate of each parameter group
  double images_per_second = 0;  ///< throughput since the session started
};

/// After every epoch: its mean loss terms and, with validation images, the student's scores.
struct EpochMetrics {
  int64_t epoch = 0;             ///< 1-based epoch
  Scores loss;                   ///< mean of every loss term over the epoch's images
  double seconds = 0;            ///< wall time of the epoch
  double images_per_second = 0;  ///< throughput of the epoch
  std::optional<Scores> val;     ///< validation accuracy by task, union and routing
};

/// Once, at the start of a run with validation images: the teachers' scores.
struct TeachersMetrics {
  Scores val;  ///< each teacher's accuracy on its task's images, and the teachers' union
};

/// At the end of a run: the student and its last validation scores.
struct SummaryMetrics {
  std::string student;                ///< the student's architecture
  int64_t student_params = 0;         ///< its parameters
  double seconds = 0;                 ///< wall time of the run's last session
  std::optional<Scores> student_val;  ///< last epoch's validation scores (none without images)
  /// The routing rule the run trained with, after the label-free check ("" when the method does
  /// not route).
  std::string routing_rule;
  /// The teachers' score agreement over the transfer images (routing runs only).
  std::optional<double> routing_agreement;
};

/// One line of metrics.jsonl.
using MetricsRecord = std::variant<StepMetrics, EpochMetrics, TeachersMetrics, SummaryMetrics>;

/// The line's JSON object, with its "type" ("step", "epoch", "teachers" or "summary").
nlohmann::json metrics_json(const MetricsRecord& record);

/// The record in `j`; throws Error naming `where` (file and line) and the key for an unknown
/// type or key, a wrong type, a negative count or time, a non-finite number or an accuracy
/// outside [0, 1].
MetricsRecord read_metrics_record(const nlohmann::json& j, const std::string& where);

}  // namespace amalgam

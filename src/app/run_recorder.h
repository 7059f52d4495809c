// What a person watches and reads of an amalgamation: progress lines, metrics.jsonl, and at the
// end embedding.json and report.html in the run directory.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/transfer_set.h"
#include "reporting/metrics.h"
#include "reporting/metrics_records.h"
#include "teachers/teacher.h"
#include "training/amalgamate.h"

namespace amalgam {

/// Watches one amalgamation (attach() it to the run's context) and keeps its run directory; the
/// directory's config.json is the caller's to write.
class RunRecorder {
 public:
  /// `val` (labeled, may be empty) is scored every epoch, the teachers once at the start unless
  /// `resumed` (their scores are already in metrics.jsonl).
  RunRecorder(std::string dir, const std::vector<Teacher>& teachers, LabeledImages val,
              const TransferSet& transfer, const AmalgamateConfig& config, bool resumed);
  /// Sets the context's observers: each epoch's losses and validation scores, and a progress
  /// line and a metrics record every config.log_every steps.
  void attach(RunContext& context);
  /// Writes the summary record, embedding.json and report.html, and with validation images
  /// best_student.pt; returns the report's path.
  std::string finish(AmalgamationResult& result);

 private:
  Scores val_scores(NetworkImpl& student);
  void keep_if_best(const Scores& scores, int64_t epoch, NetworkImpl& student);
  void write_best_student(AmalgamationResult& result);

  std::string dir_;
  const std::vector<Teacher>& teachers_;
  LabeledImages val_;
  const TransferSet& transfer_;
  AmalgamateConfig config_;
  std::shared_ptr<MetricsLog> metrics_;
  HeadLayout head_;
  std::optional<Scores> last_val_;      ///< the last epoch's validation scores
  std::vector<at::Tensor> best_state_;  ///< the student's tensors at its best validation epoch
  Scores best_val_;                     ///< that epoch's validation scores
  double best_score_ = -1;              ///< their mean over the tasks and the union
  int64_t best_epoch_ = 0;
  double start_ = 0;
  int64_t first_step_ = -1;
};

}  // namespace amalgam

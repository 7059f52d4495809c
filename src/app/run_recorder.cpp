#include "app/run_recorder.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/log.h"
#include "evaluation/embedding.h"
#include "evaluation/evaluate.h"
#include "reporting/report.h"
#include "reporting/table.h"

namespace amalgam {

RunRecorder::RunRecorder(std::string dir, const std::vector<Teacher>& teachers, LabeledImages val,
                         const TransferSet& transfer, const AmalgamateConfig& config, bool resumed)
    : dir_(std::move(dir)),
      teachers_(teachers),
      val_(std::move(val)),
      transfer_(transfer),
      config_(config),
      metrics_(std::make_shared<MetricsLog>(dir_ + "/metrics.jsonl")) {
  for (const auto& t : teachers_) head_.tasks.push_back(t.task);
  start_ = now_seconds();
  if (val_.size() > 0 && !resumed) {
    // A user's validation folder may hold some tasks' classes only: score the teachers it has.
    nlohmann::json teachers_val;
    const at::Tensor truth = true_tasks(val_.labels, head_.tasks);
    for (size_t i = 0; i < teachers_.size(); ++i)
      if (truth.eq(static_cast<int64_t>(i)).any().item<bool>())
        teachers_val[teachers_[i].task.name] =
            evaluate_teacher(teachers_[i], val_, kInferenceBatch);
    teachers_val["union"] = evaluate_ensemble(teachers_, val_, kInferenceBatch);
    metrics_->write({{"type", "teachers"}, {"val", teachers_val}});
  }
}

nlohmann::json RunRecorder::val_scores(NetworkImpl& student) {
  const StudentScores s = evaluate_student(student, head_, val_, kInferenceBatch);
  nlohmann::json scores;
  for (size_t i = 0; i < head_.tasks.size(); ++i)  // NaN: the validation set has none of its images
    if (std::isfinite(s.task_accuracy[i])) scores[head_.tasks[i].name] = s.task_accuracy[i];
  scores["union"] = s.union_accuracy;
  if (head_.tasks.size() > 1) scores["routing"] = s.routing_accuracy;
  return scores;
}

void RunRecorder::attach(RunContext& context) {
  context.on_epoch = [this](const EpochStats& e, NetworkImpl& student) {
    nlohmann::json record = {{"type", "epoch"},
                             {"epoch", e.epoch},
                             {"loss", e.loss},
                             {"seconds", e.seconds},
                             {"images_per_second", e.images_per_second}};
    if (val_.size() > 0) {
      last_val_ = record["val"] = val_scores(student);
      std::string line = "  val:";
      for (const auto& [task, acc] : last_val_.items())
        line += " " + task + " " + percent(acc.get<double>()) + "%";
      log_info(line);
    }
    metrics_->write(record);
  };
  context.hooks.on_step = [this](const StepRecord& r) {
    if (first_step_ < 0) first_step_ = r.global_step;
    if (config_.log_every <= 0 || (r.global_step + 1) % config_.log_every != 0) return;
    const int64_t total_steps = config_.train.epochs * r.steps_per_epoch;
    const double steps_per_second = (r.global_step + 1 - first_step_) / (now_seconds() - start_);
    const double images_per_second = steps_per_second * config_.train.batch_size;
    metrics_->write({{"type", "step"},
                     {"epoch", r.epoch + 1},
                     {"step", r.step + 1},
                     {"global_step", r.global_step + 1},
                     {"loss", r.loss},
                     {"lrs", r.lrs},
                     {"images_per_second", images_per_second}});
    // A plain line per interval: readable in a terminal and in CI logs alike.
    char line[512];
    std::snprintf(line, sizeof line,
                  "epoch %lld/%lld step %lld/%lld (%.0f%%) loss %.4f (%s) %.0f img/s ETA %s",
                  static_cast<long long>(r.epoch + 1), static_cast<long long>(config_.train.epochs),
                  static_cast<long long>(r.step + 1), static_cast<long long>(r.steps_per_epoch),
                  100.0 * (r.global_step + 1) / total_steps, r.loss.get("total"),
                  r.loss.parts_text().c_str(), images_per_second,
                  duration_text((total_steps - r.global_step - 1) / steps_per_second).c_str());
    log_info(line);
  };
}

std::string RunRecorder::finish(AmalgamationResult& result) {
  metrics_->write({{"type", "summary"},
                   {"student", result.student_spec.arch},
                   {"student_params", count_parameters(*result.student)},
                   {"seconds", result.seconds},
                   {"student_val", last_val_}});
  const bool labeled = val_.size() > 0;
  write_text_atomically(
      dir_ + "/embedding.json",
      feature_embedding(teachers_, *result.student, result.objective->common_space(),
                        labeled ? val_.images : transfer_.images(),
                        labeled ? val_.labels : at::Tensor(), 400)
              .dump() +
          "\n");
  return write_report(dir_);
}

}  // namespace amalgam

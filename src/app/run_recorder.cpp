#include "app/run_recorder.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/json_file.h"
#include "core/log.h"
#include "evaluation/embedding.h"
#include "evaluation/evaluate.h"
#include "models/checkpoint.h"
#include "models/zoo.h"
#include "reporting/report.h"
#include "reporting/table.h"
#include "routing/gate_calibration.h"

namespace amalgam {

namespace {

// Points of the report's embedding drawing.
constexpr int64_t kEmbeddingImages = 400;

// What "best" means for the best student: the mean of the tasks' validation accuracies and the
// union's (routing is part of the union already).
double validation_score(const Scores& scores) {
  double sum = 0;
  int count = 0;
  for (const auto& [name, acc] : scores)
    if (name != "routing") {
      sum += acc;
      ++count;
    }
  return count > 0 ? sum / count : 0;
}

// Every loss term by name, as metrics.jsonl records them.
Scores loss_scores(const LossValues& loss) {
  Scores scores;
  for (const auto& [term, value] : loss.terms()) scores[term] = value;
  return scores;
}

// Every parameter and buffer of `module`, copied.
std::vector<at::Tensor> snapshot(const torch::nn::Module& module) {
  std::vector<at::Tensor> state;
  for (const auto& p : module.parameters()) state.push_back(p.detach().clone());
  for (const auto& b : module.buffers()) state.push_back(b.detach().clone());
  return state;
}

void restore(torch::nn::Module& module, const std::vector<at::Tensor>& state) {
  torch::NoGradGuard no_grad;
  size_t i = 0;
  for (auto& p : module.parameters()) p.copy_(state.at(i++));
  for (auto& b : module.buffers()) b.copy_(state.at(i++));
}

}  // namespace

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
  // A resumed run replaces the best student an earlier session wrote only with a better one.
  const std::string best_side = dir_ + "/best_student.json";
  if (resumed && std::filesystem::is_regular_file(best_side)) {
    const nlohmann::json side = read_json_file(best_side);
    Scores best;
    if (side.contains("val") && side.at("val").is_object())
      for (const auto& [name, acc] : side.at("val").items())
        if (acc.is_number()) best[name] = acc.get<double>();
    best_score_ = validation_score(best);
  }
  if (val_.size() > 0 && !resumed) {
    // A user's validation folder may hold some tasks' classes only: score the teachers it has.
    Scores teachers_val;
    const at::Tensor truth = true_tasks(val_.labels, head_.tasks);
    for (size_t i = 0; i < teachers_.size(); ++i)
      if (truth.eq(static_cast<int64_t>(i)).any().item<bool>())
        teachers_val[teachers_[i].task.name] =
            evaluate_teacher(teachers_[i], val_, kInferenceBatch);
    teachers_val["union"] = evaluate_ensemble(teachers_, val_, kInferenceBatch);
    metrics_->write(metrics_json(TeachersMetrics{teachers_val}));
  }
}

Scores RunRecorder::val_scores(NetworkImpl& student) {
  const StudentScores s = evaluate_student(student, head_, val_, kInferenceBatch);
  Scores scores;
  for (size_t i = 0; i < head_.tasks.size(); ++i)  // NaN: the validation set has none of its images
    if (std::isfinite(s.task_accuracy[i])) scores[head_.tasks[i].name] = s.task_accuracy[i];
  scores["union"] = s.union_accuracy;
  if (head_.tasks.size() > 1) scores["routing"] = s.routing_accuracy;
  return scores;
}

void RunRecorder::attach(RunContext& context) {
  context.on_epoch = [this](const EpochStats& e, NetworkImpl& student) {
    EpochMetrics record{e.epoch, loss_scores(e.loss), e.seconds, e.images_per_second, {}};
    if (val_.size() > 0) {
      record.val = last_val_ = val_scores(student);
      std::string line = "  val:";
      for (const auto& [task, acc] : *last_val_) line += " " + task + " " + percent(acc) + "%";
      log_info(line);
      keep_if_best(*last_val_, e.epoch, student);
    }
    metrics_->write(metrics_json(record));
  };
  context.hooks.on_step = [this](const StepRecord& r) {
    if (first_step_ < 0) first_step_ = r.global_step;
    if (config_.log_every <= 0 || (r.global_step + 1) % config_.log_every != 0) return;
    const int64_t last = total_steps(config_.train, r.steps_per_epoch);
    const double steps_per_second = (r.global_step + 1 - first_step_) / (now_seconds() - start_);
    const double images_per_second = steps_per_second * config_.train.batch_size;
    metrics_->write(metrics_json(StepMetrics{r.epoch + 1, r.step + 1, r.global_step + 1,
                                             loss_scores(r.loss), r.lrs, images_per_second}));
    // A plain line per interval: readable in a terminal and in CI logs alike.
    char line[512];
    std::snprintf(line, sizeof line,
                  "epoch %lld/%lld step %lld/%lld (%.0f%%) loss %.4f (%s) %.0f img/s ETA %s",
                  static_cast<long long>(r.epoch + 1), static_cast<long long>(config_.train.epochs),
                  static_cast<long long>(r.step + 1), static_cast<long long>(r.steps_per_epoch),
                  100.0 * (r.global_step + 1) / last, r.loss.get("total"),
                  r.loss.parts_text().c_str(), images_per_second,
                  duration_text((last - r.global_step - 1) / steps_per_second).c_str());
    log_info(line);
  };
}

// The best epoch on validation; a later epoch wins ties.
void RunRecorder::keep_if_best(const Scores& scores, int64_t epoch, NetworkImpl& student) {
  const double score = validation_score(scores);
  if (score < best_score_) return;
  best_score_ = score;
  best_epoch_ = epoch;
  best_val_ = scores;
  best_state_ = snapshot(student);
}

// best_student.pt: the student of the best validation epoch, its task gate calibrated as the
// final student's is. Kept beside student.pt (the last epoch), which resuming continues from.
void RunRecorder::write_best_student(AmalgamationResult& result) {
  if (best_state_.empty()) return;  // no validation images, or a resumed run with no new epoch
  NetworkImpl& student = *result.student;
  const std::vector<at::Tensor> last = snapshot(student);
  restore(student, best_state_);
  if (const auto shares = result.objective->gate_shares(); !shares.empty())
    calibrate_task_gate(student, transfer_.sample(kCalibrationImages), result.head, shares);
  nlohmann::json meta;
  meta["role"] = "student";
  meta["model"] = result.student_spec;
  meta["head"] = result.head;
  meta["method"] = method_of(config_.objective).name;
  meta["best_epoch"] = best_epoch_;
  meta["val"] = best_val_;
  save_network(student, dir_ + "/best_student.pt", meta);
  restore(student, last);
  log_info("best validation epoch " + std::to_string(best_epoch_) + " -> " + dir_ +
           "/best_student.pt (export it with: amalgam export " + dir_ +
           "/best_student.pt --out FILE.pt)");
}

std::string RunRecorder::finish(AmalgamationResult& result) {
  SummaryMetrics summary{result.student_spec.arch,
                         count_parameters(*result.student),
                         result.seconds,
                         last_val_,
                         "",
                         std::nullopt};
  if (const RoutedTargets* routed = result.objective->routed_targets()) {
    summary.routing_rule = routed->rule_name();
    summary.routing_agreement = routed->agreement();
  }
  metrics_->write(metrics_json(summary));
  const bool labeled = val_.size() > 0;
  write_text_atomically(
      dir_ + "/embedding.json",
      feature_embedding(teachers_, *result.student, result.objective->common_space(),
                        labeled ? val_.images : transfer_.sample(kEmbeddingImages),
                        labeled ? val_.labels : at::Tensor(), kEmbeddingImages)
              .dump() +
          "\n");
  write_best_student(result);
  return write_report(dir_);
}

}  // namespace amalgam

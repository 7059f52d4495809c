#include "routing/routed_targets.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/log.h"

namespace amalgam {
namespace {

// Share of the run over which the gate's forget rate rises from 0 (Co-teaching's ramp).
constexpr double kGateForgetRamp = 0.2;

}  // namespace

RoutedTargets::RoutedTargets(const std::vector<at::Tensor>& transfer_logits, RoutingOptions options,
                             const std::vector<TaskSpec>& tasks, double temperature,
                             bool route_each_batch)
    : options_(std::move(options)), temperature_(temperature) {
  for (const auto& task : tasks) sizes_.push_back(task.size());
  routing_ = route_by_teachers(transfer_logits, options_);
  if (route_each_batch) fitted_ = fit_routing(transfer_logits, routing_, options_);
  const bool label_free = label_free_check_applies(options_) && tasks.size() > 1;
  if (falls_back_without_labels(options_, routing_.agreement)) {
    options_.rule = RoutingRule::kConcatenated;
    fell_back_ = true;
  }
  if (label_free) log_info(describe_label_free_check());
  std::string line = "amalgamate: routing by teachers:";
  const std::vector<double> shares = routed_shares();
  for (size_t i = 0; i < tasks.size(); ++i) {
    char part[160];
    std::snprintf(part, sizeof part, " %s %.1f%% (prior %.1f%%)", tasks[i].name.c_str(),
                  100.0 * shares[i], 100.0 * routing_.prior[i]);
    line += part;
  }
  line += "; " + std::to_string(routing_.confident.sum().item<int64_t>()) + " of " +
          std::to_string(routing_.task.size(0)) + " images confidently routed" +
          (fitted_ ? " (a sample of the streamed set; each batch is routed from its teachers' "
                     "logits)"
                   : "");
  log_info(line);
}

// Measured on the cross-domain user set-up (docs/results.md): the responsibility alone starves a
// teacher whose images are a minority of the transfer set of the images plain KD imitates it on.
std::vector<at::Tensor> RoutedTargets::teacher_weights(
    const at::Tensor& indices, const std::vector<at::Tensor>& teacher_logits) const {
  std::vector<at::Tensor> weights;
  const auto options = teacher_logits.front().options();
  if (uniform()) {
    for (size_t i = 0; i < sizes_.size(); ++i)
      weights.push_back(torch::ones({indices.size(0)}, options));
    return weights;
  }
  const at::Tensor responsibility =
      batch_routing(indices, teacher_logits).responsibility.to(options);
  const at::Tensor kd_share = concatenated_target_shares(teacher_logits);
  for (size_t i = 0; i < sizes_.size(); ++i) {
    const at::Tensor r = responsibility.select(1, static_cast<int64_t>(i));
    weights.push_back(options_.slice_weights == SliceWeights::kExpertise
                          ? torch::max(r, kd_share.select(1, static_cast<int64_t>(i)))
                          : r);
  }
  return weights;
}

// [B,T]: each teacher's share of plain KD's soft targets (the softmax of the concatenated logits
// at the soft-target temperature).
at::Tensor RoutedTargets::concatenated_target_shares(
    const std::vector<at::Tensor>& teacher_logits) const {
  return slice_probabilities(torch::cat(teacher_logits, 1) / temperature_, sizes_);
}

at::Tensor RoutedTargets::within_task_loss(const at::Tensor& student_logits,
                                           const std::vector<at::Tensor>& teacher_logits,
                                           const std::vector<at::Tensor>& weights) const {
  const double t = temperature_;
  at::Tensor loss = torch::zeros({}, student_logits.options());
  int64_t offset = 0;
  for (size_t i = 0; i < teacher_logits.size(); ++i) {
    const at::Tensor slice = student_logits.slice(1, offset, offset + sizes_[i]) / t;
    const at::Tensor target = torch::softmax(teacher_logits[i] / t, 1);
    const at::Tensor per_image = -(target * torch::log_softmax(slice, 1)).sum(1);
    loss = loss + t * t * (weights[i] * per_image).mean();
    offset += sizes_[i];
  }
  return loss;
}

// The confident images' tasks (gate), the teachers' calibrated responsibilities (teachers), or the
// concatenated logits' task shares (concatenated: with the within-slice terms, KD's union).
at::Tensor RoutedTargets::task_loss(const at::Tensor& student_logits,
                                    const std::vector<at::Tensor>& teacher_logits,
                                    const at::Tensor& indices, const BatchGather& gather,
                                    double progress) const {
  const at::Tensor log_task = slice_log_probabilities(student_logits, sizes_);
  if (options_.rule == RoutingRule::kConcatenated)
    return -(concatenated_target_shares(teacher_logits).to(log_task.options()) * log_task)
                .sum(1)
                .mean();
  const TaskRouting batch = batch_routing(indices, teacher_logits);
  if (options_.rule == RoutingRule::kTeachers) {
    const at::Tensor target = batch.responsibility.to(log_task.options());
    return -(target * log_task).sum(1).mean();
  }
  const at::Tensor task = batch.task.to(log_task.device());
  const at::Tensor confident = batch.confident.to(log_task.device());
  const at::Tensor nll = -log_task.gather(1, task.unsqueeze(1)).squeeze(1);
  const at::Tensor kept = small_loss(nll.detach(), confident, task, gather, progress);
  return (kept.to(nll.scalar_type()) * nll).mean();
}

// The confident images minus, within each routed task, the share gate_forget of them with the
// largest gate loss: a network fits clean pseudo-labels before wrong ones (Han et al. 2018,
// Co-teaching), so the largest losses mark the images the teachers' routing got wrong. Per task,
// so a task the gate has not learnt yet does not lose its images to the others. Ranked over the
// whole batch (every rank's rows in data-parallel runs), so 2 ranks x B/2 leave out the images
// 1 rank x B does.
at::Tensor RoutedTargets::small_loss(const at::Tensor& nll, const at::Tensor& confident,
                                     const at::Tensor& task, const BatchGather& gather,
                                     double progress) const {
  const double rate = options_.gate_forget * std::min(1.0, progress / kGateForgetRamp);
  if (rate <= 0) return confident;
  at::Tensor kept = confident;
  for (size_t t = 0; t < sizes_.size(); ++t) {
    const at::Tensor mine = confident.logical_and(task.eq(static_cast<int64_t>(t)));
    // The gate's loss on this task's confident images, -1 elsewhere (a loss is >= 0).
    const at::Tensor key = nll.to(torch::kFloat32).masked_fill(mine.logical_not(), -1.0);
    const at::Tensor whole = gather ? gather(key) : key;
    const int64_t count = whole.ge(0).sum().item<int64_t>();
    const auto drop = static_cast<int64_t>(std::floor(rate * static_cast<double>(count)));
    if (drop == 0) continue;
    const at::Tensor threshold = std::get<0>(whole.topk(drop)).min();
    kept = kept.logical_and(mine.logical_and(key.ge(threshold)).logical_not());
  }
  return kept;
}

std::vector<double> RoutedTargets::gate_shares() const {
  // The concatenated rule's gate follows the teachers' logits, not the calibrated routing.
  const bool follows_routing = options_.rule != RoutingRule::kConcatenated;
  return follows_routing && options_.calibrate_gate ? routed_shares() : std::vector<double>{};
}

TaskRouting RoutedTargets::batch_routing(const at::Tensor& indices,
                                         const std::vector<at::Tensor>& teacher_logits) const {
  if (fitted_) {
    std::vector<at::Tensor> logits;
    for (const auto& l : teacher_logits) logits.push_back(l.detach().cpu());
    return apply_routing(logits, *fitted_, options_);
  }
  const at::Tensor rows = indices.cpu();
  TaskRouting batch;
  batch.responsibility = routing_.responsibility.index_select(0, rows);
  batch.task = routing_.task.index_select(0, rows);
  batch.confident = routing_.confident.index_select(0, rows);
  return batch;
}

std::vector<double> RoutedTargets::routed_shares() const {
  return task_shares(routing_.task, static_cast<int64_t>(sizes_.size()));
}

std::string RoutedTargets::rule_name() const {
  return nlohmann::json(options_)["rule"].get<std::string>();
}

std::string RoutedTargets::describe_label_free_check() const {
  char line[320];
  std::snprintf(line, sizeof line,
                "amalgamate: the teachers' routing scores correlate %+.3f over the transfer images "
                "(task evidence needs <= %+.2f)%s",
                routing_.agreement, kMaxScoreAgreement,
                fell_back_ ? " and no labeled check decided -> no evidence: the union follows the "
                             "concatenated logits (plain KD's)"
                           : "");
  return line;
}

nlohmann::json RoutedTargets::summary() const {
  return {{"agreement", routing_.agreement},
          {"label_free_fall_back", fell_back_},
          {"rule", rule_name()},
          {"prior", routing_.prior},
          {"routed_share", routed_shares()},
          {"confident", routing_.confident.sum().item<int64_t>()},
          {"bias", routing_.bias}};
}

}  // namespace amalgam

#include "method/objective.h"

#include <torch/torch.h>

#include "core/error.h"
#include "method/common_space_loss.h"
#include "method/losses.h"

namespace amalgam {

ObjectiveImpl::ObjectiveImpl(const ObjectiveSetup& setup)
    : config_(setup.config),
      block_lr_mult_(setup.block_lr_mult),
      teachers_(setup.head.tasks.size()) {
  if (config_.common_space) block_ = register_module("block", make_common_feature_block(setup));
  if (config_.hints)
    hints_ = register_module("hints", HintAdapters(setup.student_shape, setup.teacher_shapes));
  // One teacher has nothing to route; without transfer logits (a --dry-run) the routing is
  // planned, not estimated: summary() shows its options.
  if (config_.routing && teachers_ > 1 && setup.transfer_logits)
    routed_.emplace(setup.transfer_logits(), *config_.routing, setup.head.tasks,
                    config_.temperature, setup.route_each_batch);
}

LossTerms ObjectiveImpl::loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                              const BatchContext& batch) {
  std::vector<at::Tensor> teacher_logits;
  for (const auto& t : teachers) teacher_logits.push_back(t.logits);
  const std::vector<at::Tensor> weights =
      routed_ ? routed_->teacher_weights(batch.indices, teacher_logits) : std::vector<at::Tensor>{};
  LossTerms terms;
  terms.add("kd", routed_ ? routed_->within_task_loss(student.logits, teacher_logits, weights)
                          : soft_target_loss(student, teachers, config_.temperature));
  at::Tensor total = config_.lambda_kd * terms.part("kd");
  if (routed_) {
    terms.add("task", routed_->task_loss(student.logits, teacher_logits, batch.indices,
                                         batch.gather, batch.progress));
    total = total + config_.routing->lambda_task * terms.part("task");
  }
  if (block_) {
    const bool weighted = routed_ && !routed_->uniform();
    const CommonSpaceLoss common =
        common_space_loss(*block_, student, teachers, *config_.common_space, batch.gather,
                          weighted ? weights : std::vector<at::Tensor>{});
    terms.add("mmd", common.mmd);
    terms.add("recon", common.recon);
    total = total + feature_weight(batch.progress) *
                        (common.mmd + config_.common_space->beta * common.recon);
  }
  if (hints_) {
    at::Tensor hint = torch::zeros({}, student.logits.options());
    for (size_t i = 0; i < teachers.size(); ++i)
      hint = hint + torch::mse_loss(hints_->hint(i, student.features).to(torch::kFloat32),
                                    teachers[i].features);
    terms.add("hint", hint);
    total = total + config_.hints->weight * hint;
  }
  terms.total = total;
  return terms;
}

std::vector<ParamGroup> ObjectiveImpl::parameter_groups() {
  // The fixed-space control trains the decoders alone (they do not reach the student).
  if (block_ && config_.common_space->fixed)
    return {{block_->decoder_parameters(), block_lr_mult_}};
  if (block_) return {{block_->parameters(), block_lr_mult_}};
  if (hints_) return {{hints_->parameters(), block_lr_mult_}};
  return {};
}

nlohmann::json ObjectiveImpl::summary() {
  nlohmann::json out = block_ ? common_space_summary(*block_) : nlohmann::json::object();
  if (routed_) {
    out["routing"] = routed_->summary();
  } else if (config_.routing && teachers_ > 1) {
    out["routing"] = {{"options", *config_.routing},
                      {"estimated", "from the teachers' logits on the transfer images"}};
  }
  return out.empty() ? nlohmann::json() : out;
}

std::vector<double> ObjectiveImpl::gate_shares() const {
  return routed_ ? routed_->gate_shares() : std::vector<double>{};
}

double ObjectiveImpl::feature_weight(double progress) const {
  const CommonSpaceOptions& c = *config_.common_space;
  if (c.warmup <= 0 || progress >= c.warmup) return c.weight;
  return c.weight * progress / c.warmup;
}

Objective make_objective(const ObjectiveSetup& setup) {
  validate(setup.config);
  return std::make_shared<ObjectiveImpl>(setup);
}

at::Tensor soft_target_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                            double temperature) {
  std::vector<at::Tensor> logits;
  for (const auto& t : teachers) logits.push_back(t.logits);
  const at::Tensor targets = torch::softmax(torch::cat(logits, 1) / temperature, 1);
  return temperature * temperature * soft_cross_entropy(student.logits / temperature, targets);
}

}  // namespace amalgam

// Expertise-aware Common Feature Learning, amalgam's default. The student's soft targets are
// factored into P(task | image) x the responsible teacher's P(class | task): each teacher is
// imitated within its own slice of the head, weighted by its responsibility for the image, and
// the slices' softmax mass (the student's own task gate, no extra network) learns which task an
// image belongs to from the confidently routed images. The common-space terms of CFL follow, each
// teacher's MMD weighted by the same responsibilities.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/log.h"
#include "method/common_space_loss.h"
#include "method/losses.h"
#include "method/objective.h"

namespace amalgam {
namespace {

// Share of the run over which the gate's forget rate rises from 0 (Co-teaching's ramp).
constexpr double kGateForgetRamp = 0.2;

class CflObjectiveImpl : public ObjectiveImpl {
 public:
  explicit CflObjectiveImpl(const ObjectiveSetup& setup)
      : config_(setup.config), lr_mult_(setup.parts_lr_mult) {
    for (const auto& task : setup.head.tasks) sizes_.push_back(task.size());
    if (config_.lambda_cf > 0) block_ = register_module("block", make_common_feature_block(setup));
    // Without transfer logits (a --dry-run, which reads no images) the routing is planned, not
    // estimated: summary() shows its options.
    if (config_.routing.rule != RoutingRule::kNone && sizes_.size() > 1 && setup.transfer_logits) {
      routing_ = route_by_teachers(setup.transfer_logits(), config_.routing);
      log_routing(setup.head);
    }
  }

  LossTerms loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                 const BatchContext& batch) override {
    LossTerms terms;
    const std::vector<at::Tensor> weights = teacher_weights(batch, teachers);
    terms.add("kd", routed() ? within_task_loss(student, teachers, weights)
                             : soft_target_loss(student, teachers, config_.temperature));
    at::Tensor total = config_.lambda_kd * terms.part("kd");
    if (routed()) {
      terms.add("task", task_loss(student, teachers, batch));
      total = total + config_.routing.lambda_task * terms.part("task");
    }
    if (block_) {
      const CommonSpaceLoss common =
          common_space_loss(*block_, student, teachers, config_, batch.gather,
                            uniform() ? std::vector<at::Tensor>{} : weights);
      terms.add("mmd", common.mmd);
      terms.add("recon", common.recon);
      total = total + feature_weight(batch.progress) * (common.mmd + config_.beta * common.recon);
    }
    terms.total = total;
    return terms;
  }

  std::vector<ParamGroup> parameter_groups() override {
    if (!block_) return {};
    if (config_.fixed_common_space) return {{block_->decoder_parameters(), lr_mult_}};
    return {{block_->parameters(), lr_mult_}};
  }

  std::vector<double> gate_shares() const override {
    // The concatenated rule's gate follows the teachers' logits, not the calibrated routing.
    const bool gate_follows_routing = config_.routing.rule != RoutingRule::kConcatenated;
    return routed() && gate_follows_routing && config_.routing.calibrate_gate
               ? routed_shares()
               : std::vector<double>{};
  }

  CommonFeatureBlockImpl* common_space() override { return block_ ? block_.get() : nullptr; }

  nlohmann::json summary() override {
    nlohmann::json out = block_ ? common_space_summary(*block_) : nlohmann::json::object();
    if (routed()) {
      out["routing"] = {{"prior", routing_.prior},
                        {"routed_share", routed_shares()},
                        {"confident", routing_.confident.sum().item<int64_t>()},
                        {"bias", routing_.bias}};
    } else if (config_.routing.rule != RoutingRule::kNone && sizes_.size() > 1) {
      out["routing"] = {{"options", config_.routing},
                        {"estimated", "from the teachers' logits on the transfer images"}};
    }
    return out;
  }

 private:
  bool routed() const { return routing_.task.defined(); }

  // Per task, the share of transfer images the calibrated teacher scores route to it.
  std::vector<double> routed_shares() const {
    return task_shares(routing_.task, static_cast<int64_t>(sizes_.size()));
  }
  bool uniform() const {
    return !routed() || config_.routing.slice_weights == SliceWeights::kUniform;
  }

  // Per teacher, each image's weight [B] (see SliceWeights). Measured on the cross-domain user
  // set-up (seed 0, digits / clothing %): KD 89.5 / 67.6, responsibility 83.5 / 72.8, expertise
  // 89.5 / 72.2 — the responsibility alone starves the digits teacher, whose images are a quarter
  // of the transfer set, of the images plain KD imitates it on.
  std::vector<at::Tensor> teacher_weights(const BatchContext& batch,
                                          const std::vector<ModelOutput>& teachers) const {
    std::vector<at::Tensor> weights;
    if (!routed()) return weights;
    const auto options = teachers.front().logits.options();
    const int64_t n = batch.indices.size(0);
    if (uniform()) {
      for (size_t i = 0; i < sizes_.size(); ++i) weights.push_back(torch::ones({n}, options));
      return weights;
    }
    const at::Tensor responsibility =
        routing_.responsibility.index_select(0, batch.indices.cpu()).to(options);
    const at::Tensor kd_share = concatenated_target_shares(teachers);
    for (size_t i = 0; i < sizes_.size(); ++i) {
      const at::Tensor r = responsibility.select(1, static_cast<int64_t>(i));
      weights.push_back(config_.routing.slice_weights == SliceWeights::kExpertise
                            ? torch::max(r, kd_share.select(1, static_cast<int64_t>(i)))
                            : r);
    }
    return weights;
  }

  // [B,T]: each teacher's share of plain KD's soft targets (the softmax of the concatenated
  // logits at the soft-target temperature).
  at::Tensor concatenated_target_shares(const std::vector<ModelOutput>& teachers) const {
    std::vector<at::Tensor> logits;
    for (const auto& t : teachers) logits.push_back(t.logits);
    return slice_probabilities(torch::cat(logits, 1) / config_.temperature, sizes_);
  }

  // Each teacher's soft targets within its own slice of the head, weighted per image.
  at::Tensor within_task_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                              const std::vector<at::Tensor>& weights) const {
    const double t = config_.temperature;
    at::Tensor loss = torch::zeros({}, student.logits.options());
    int64_t offset = 0;
    for (size_t i = 0; i < teachers.size(); ++i) {
      const at::Tensor slice = student.logits.slice(1, offset, offset + sizes_[i]) / t;
      const at::Tensor target = torch::softmax(teachers[i].logits / t, 1);
      const at::Tensor per_image = -(target * torch::log_softmax(slice, 1)).sum(1);
      loss = loss + t * t * (weights[i] * per_image).mean();
      offset += sizes_[i];
    }
    return loss;
  }

  // Cross-entropy of the student's task gate (its slices' softmax mass) against the routing:
  // the confident images' tasks (gate), the teachers' calibrated responsibilities (teachers), or
  // the concatenated logits' task shares (concatenated: with the within-slice terms, KD's union).
  at::Tensor task_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                       const BatchContext& batch) const {
    const at::Tensor log_task = slice_log_probabilities(student.logits, sizes_);
    if (config_.routing.rule == RoutingRule::kConcatenated)
      return -(concatenated_target_shares(teachers).to(log_task.options()) * log_task)
                  .sum(1)
                  .mean();
    const at::Tensor rows = batch.indices.cpu();
    if (config_.routing.rule == RoutingRule::kTeachers) {
      const at::Tensor target =
          routing_.responsibility.index_select(0, rows).to(log_task.options());
      return -(target * log_task).sum(1).mean();
    }
    const at::Tensor task = routing_.task.index_select(0, rows).to(log_task.device());
    const at::Tensor confident = routing_.confident.index_select(0, rows).to(log_task.device());
    const at::Tensor nll = -log_task.gather(1, task.unsqueeze(1)).squeeze(1);
    const at::Tensor kept = small_loss(nll.detach(), confident, task, batch);
    return (kept.to(nll.scalar_type()) * nll).mean();
  }

  // The confident images minus, within each routed task, the share gate_forget of them with the
  // largest gate loss: a network fits clean pseudo-labels before wrong ones (Han et al. 2018,
  // Co-teaching), so the largest losses mark the images the teachers' routing got wrong. Per
  // task, so a task the gate has not learnt yet does not lose its images to the others. Ranked
  // over the whole batch (every rank's rows in data-parallel runs), so 2 ranks x B/2 leave out
  // the images 1 rank x B does.
  at::Tensor small_loss(const at::Tensor& nll, const at::Tensor& confident, const at::Tensor& task,
                        const BatchContext& batch) const {
    const double rate =
        config_.routing.gate_forget * std::min(1.0, batch.progress / kGateForgetRamp);
    if (rate <= 0) return confident;
    at::Tensor kept = confident;
    for (size_t t = 0; t < sizes_.size(); ++t) {
      const at::Tensor mine = confident.logical_and(task.eq(static_cast<int64_t>(t)));
      // The gate's loss on this task's confident images, -1 elsewhere (a loss is >= 0).
      const at::Tensor key = nll.to(torch::kFloat32).masked_fill(mine.logical_not(), -1.0);
      const at::Tensor whole = batch.gather ? batch.gather(key) : key;
      const int64_t count = whole.ge(0).sum().item<int64_t>();
      const auto drop = static_cast<int64_t>(std::floor(rate * static_cast<double>(count)));
      if (drop == 0) continue;
      const at::Tensor threshold = std::get<0>(whole.topk(drop)).min();
      kept = kept.logical_and(mine.logical_and(key.ge(threshold)).logical_not());
    }
    return kept;
  }

  double feature_weight(double progress) const {
    if (config_.feature_warmup <= 0 || progress >= config_.feature_warmup) return config_.lambda_cf;
    return config_.lambda_cf * progress / config_.feature_warmup;
  }

  void log_routing(const HeadLayout& head) const {
    std::string line = "amalgamate: routing by teachers:";
    const std::vector<double> shares = routed_shares();
    for (size_t i = 0; i < head.tasks.size(); ++i) {
      char part[160];
      std::snprintf(part, sizeof part, " %s %.1f%% (prior %.1f%%)", head.tasks[i].name.c_str(),
                    100.0 * shares[i], 100.0 * routing_.prior[i]);
      line += part;
    }
    line += "; " + std::to_string(routing_.confident.sum().item<int64_t>()) + " of " +
            std::to_string(routing_.task.size(0)) + " images confidently routed";
    log_info(line);
  }

  ObjectiveConfig config_;
  double lr_mult_;
  std::vector<int64_t> sizes_;
  CommonFeatureBlock block_{nullptr};
  TaskRouting routing_;
};

}  // namespace

Objective make_cfl_objective(const ObjectiveSetup& setup) {
  return std::make_shared<CflObjectiveImpl>(setup);
}

}  // namespace amalgam

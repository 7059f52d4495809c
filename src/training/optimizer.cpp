#include "training/optimizer.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/precision.h"

namespace amalgam {

void validate(const TrainOptions& o) {
  AMALGAM_CHECK(o.epochs > 0, "--epochs: must be > 0, got " + std::to_string(o.epochs));
  AMALGAM_CHECK(o.batch_size > 0, "--batch-size: must be > 0, got " + std::to_string(o.batch_size));
  AMALGAM_CHECK(o.lr > 0 && std::isfinite(o.lr), "--lr: must be a positive number");
  AMALGAM_CHECK(o.head_lr_mult > 0, "--head-lr-mult: must be > 0");
  AMALGAM_CHECK(o.block_lr_mult > 0, "--block-lr-mult: must be > 0");
  AMALGAM_CHECK(o.weight_decay >= 0, "--weight-decay: must be >= 0");
  AMALGAM_CHECK(o.augment.crop_padding >= 0, "--crop-padding: must be >= 0");
  const auto& scale = o.augment.crop_scale;
  AMALGAM_CHECK(scale.size() == 2 && scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1,
                "--crop-scale: expected MIN,MAX with 0 < MIN <= MAX <= 1");
  const auto& ratio = o.augment.crop_ratio;
  AMALGAM_CHECK(
      ratio.size() == 2 && ratio[0] > 0 && ratio[0] <= ratio[1] && std::isfinite(ratio[1]),
      "--crop-ratio: expected MIN,MAX with 0 < MIN <= MAX (width / height)");
  AMALGAM_CHECK(o.augment.mixup_alpha >= 0 && std::isfinite(o.augment.mixup_alpha),
                "--mixup: must be a number >= 0 (0 = off)");
  AMALGAM_CHECK(o.min_steps >= 0, "--min-steps: must be >= 0 (0 = --epochs alone)");
  AMALGAM_CHECK(o.steps >= 0, "--steps: must be >= 0 (0 = the epochs decide)");
  AMALGAM_CHECK(o.step_epochs > 0, "--step-epochs: must be > 0");
  AMALGAM_CHECK(o.gamma > 0 && o.gamma <= 1, "--gamma: must be in (0, 1]");
  AMALGAM_CHECK(o.threads >= 0, "--threads: must be >= 0 (0 = all cores)");
  AMALGAM_CHECK(o.max_loss_growth >= 0 && std::isfinite(o.max_loss_growth),
                "--max-loss-growth: must be >= 0 (0 = no divergence guard)");
  parse_precision(o.precision, c10::Device(c10::kCPU));  // names --precision when unknown
}

int64_t epochs_for(const TrainOptions& options, int64_t images) {
  const int64_t steps_per_epoch = std::max<int64_t>(1, images / options.batch_size);
  if (options.steps > 0) return (options.steps + steps_per_epoch - 1) / steps_per_epoch;
  const int64_t needed = (options.min_steps + steps_per_epoch - 1) / steps_per_epoch;
  return std::max(options.epochs, needed);
}

int64_t total_steps(const TrainOptions& options, int64_t steps_per_epoch) {
  return options.steps > 0 ? options.steps : options.epochs * std::max<int64_t>(1, steps_per_epoch);
}

ScheduledAdam::ScheduledAdam(const std::vector<ParamGroup>& groups, const TrainOptions& options,
                             int64_t steps_per_epoch)
    : options_(options), steps_per_epoch_(std::max<int64_t>(1, steps_per_epoch)) {
  std::vector<torch::optim::OptimizerParamGroup> adam_groups;
  for (const auto& group : groups) {
    if (group.params.empty()) continue;
    const double lr = options.lr * group.lr_mult;
    base_lrs_.push_back(lr);
    adam_groups.emplace_back(group.params,
                             std::make_unique<torch::optim::AdamOptions>(
                                 torch::optim::AdamOptions(lr).weight_decay(options.weight_decay)));
  }
  adam_ = std::make_unique<torch::optim::Adam>(
      adam_groups, torch::optim::AdamOptions(options.lr).weight_decay(options.weight_decay));
}

ScheduledAdam::~ScheduledAdam() = default;

double ScheduledAdam::factor(int64_t step) const {
  const int64_t total = total_steps(options_, steps_per_epoch_);
  if (options_.schedule == Schedule::kCosine)
    return 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(std::min(step, total)) / total));
  if (options_.schedule == Schedule::kStep)
    return std::pow(options_.gamma,
                    static_cast<double>(step / steps_per_epoch_ / options_.step_epochs));
  return 1.0;
}

std::vector<double> ScheduledAdam::learning_rates() const {
  std::vector<double> lrs;
  for (double base : base_lrs_) lrs.push_back(base * factor(step_));
  return lrs;
}

void ScheduledAdam::save(torch::serialize::OutputArchive& archive) const {
  torch::serialize::OutputArchive adam;
  adam_->save(adam);
  archive.write("adam", adam);
  archive.write("step", torch::tensor(step_, torch::kInt64));
}

void ScheduledAdam::load(torch::serialize::InputArchive& archive) {
  torch::serialize::InputArchive adam;
  archive.read("adam", adam);
  adam_->load(adam);
  at::Tensor step;
  archive.read("step", step);
  step_ = step.item<int64_t>();
}

void ScheduledAdam::zero_grad() {
  adam_->zero_grad();
}

void ScheduledAdam::step() {
  const double f = factor(step_);
  auto& groups = adam_->param_groups();
  for (size_t i = 0; i < groups.size(); ++i)
    static_cast<torch::optim::AdamOptions&>(groups[i].options()).lr(base_lrs_[i] * f);
  adam_->step();
  ++step_;
}

}  // namespace amalgam

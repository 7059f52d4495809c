// Options every training command shares, and Adam with parameter groups and a schedule.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "data/augment.h"
#include "models/network.h"

namespace torch::optim {
class Adam;
}
namespace torch::serialize {
class InputArchive;
class OutputArchive;
}  // namespace torch::serialize

namespace amalgam {

/// How the learning rate moves over a run.
enum class Schedule {
  kCosine,    ///< half a cosine from lr to 0 over the run
  kStep,      ///< times gamma every step_epochs epochs
  kConstant,  ///< lr throughout
};

/// Options every training command shares.
struct TrainOptions {
  int64_t epochs = 5;  ///< passes over the training data
  /// At least this many optimisation steps: epochs_for() raises the epochs of a small training
  /// set to reach them (0 = `epochs` alone).
  int64_t min_steps = 0;
  /// Exactly this many optimisation steps, the last epoch cut short, the learning-rate schedule
  /// spanning them (0 = the epochs decide); epochs_for() gives the epochs that hold them.
  int64_t steps = 0;
  int64_t batch_size = 128;               ///< images per step
  double lr = 1e-3;                       ///< Adam learning rate of the backbone
  double head_lr_mult = 10.0;             ///< head learning rate = lr * this
  double block_lr_mult = 10.0;            ///< objective's parts (common space, hints): lr * this
  double weight_decay = 5e-4;             ///< Adam L2 weight decay
  Schedule schedule = Schedule::kCosine;  ///< cosine | step | constant
  int64_t step_epochs = 2;                ///< step schedule: epochs between decays
  double gamma = 0.1;                     ///< step schedule: decay factor
  uint64_t seed = 0;                      ///< seeds initialisation and data order
  int threads = 0;                        ///< intra-op threads (0 = all cores)
  std::string device = "cpu";             ///< cpu | cuda[:N]
  std::string precision = "fp32";         ///< fp32 | bf16 | auto (core/precision.h)
  AugmentOptions augment;                 ///< applied to every training batch (off by default)
  /// Divergence guard: a step whose total loss exceeds this many times max(1, the run's first
  /// step's total) stops the run before it updates anything (0 = off).
  double max_loss_growth = 100.0;
};

/// Throws Error naming the option for any nonsense value.
void validate(const TrainOptions& options);

/// The epochs a run over `images` training images takes: those that hold options.steps when set;
/// otherwise options.epochs, or more when that many epochs would take fewer than
/// options.min_steps steps of options.batch_size images.
int64_t epochs_for(const TrainOptions& options, int64_t images);

/// The steps a run of `steps_per_epoch` steps an epoch takes: options.steps when set, otherwise
/// options.epochs x steps_per_epoch.
int64_t total_steps(const TrainOptions& options, int64_t steps_per_epoch);

/// Adam over several parameter groups whose learning rates follow one schedule, set per step.
class ScheduledAdam {
 public:
  ScheduledAdam(const std::vector<ParamGroup>& groups, const TrainOptions& options,
                int64_t steps_per_epoch);
  ~ScheduledAdam();
  /// Clears gradients.
  void zero_grad();
  /// Sets this step's learning rates, then takes an Adam step.
  void step();
  /// The schedule's factor at step `step` (1 at the start).
  double factor(int64_t step) const;
  /// Learning rate of each group at the current step.
  std::vector<double> learning_rates() const;
  /// Writes Adam's moments and the step count (for a run checkpoint).
  void save(torch::serialize::OutputArchive& archive) const;
  /// Restores what save() wrote; the parameter groups must be the same.
  void load(torch::serialize::InputArchive& archive);

 private:
  std::unique_ptr<torch::optim::Adam> adam_;
  std::vector<double> base_lrs_;
  TrainOptions options_;
  int64_t steps_per_epoch_;
  int64_t step_ = 0;
};

}  // namespace amalgam

// The one training loop. Teaching (cross-entropy on labels) and amalgamation (an objective over
// frozen teachers) both run on it, so both checkpoint, resume bitwise after a kill, stop cleanly
// on SIGINT/SIGTERM, guard against divergence and train data-parallel in the same way.
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "data/batch_loader.h"
#include "method/loss_values.h"
#include "method/objective.h"
#include "models/network.h"
#include "training/optimizer.h"

namespace amalgam {

class Replicas;
class RunCheckpointer;
struct RunProgress;

/// Mean loss terms and speed of one epoch.
struct EpochStats {
  int64_t epoch = 0;             ///< 1-based
  LossValues loss;               ///< mean of every loss term over the epoch's images
  double images_per_second = 0;  ///< throughput of the epoch
  double seconds = 0;            ///< wall time of the epoch
  double data_wait_seconds = 0;  ///< of which waiting for the next batch to be ready
};

/// One optimisation step, as the step hook sees it.
struct StepRecord {
  int64_t epoch = 0;            ///< 0-based epoch
  int64_t step = 0;             ///< 0-based step within the epoch
  int64_t global_step = 0;      ///< 0-based step over the run
  int64_t steps_per_epoch = 0;  ///< steps in a whole epoch (a --steps run cuts its last short)
  at::Tensor indices;           ///< int64 [b]: transfer-set positions of this rank's batch share
  LossValues loss;              ///< every loss term of the step (the whole batch's)
  std::vector<double> lrs;      ///< learning rate of each parameter group used by the step
  double seconds = 0;           ///< wall time of the step
};

/// Called after every epoch with the trained network (e.g. to score it on a validation split).
using EpochCallback = std::function<void(const EpochStats&, NetworkImpl& network)>;

/// Called after every optimisation step; must not change the training.
using StepCallback = std::function<void(const StepRecord&)>;

/// One batch's loss terms. `clean` is the batch's images on the run's device as loaded, `images`
/// the same augmented; the function sets its own precision (autocast) and returns float32 terms.
using BatchLoss = std::function<LossTerms(const Batch& batch, const at::Tensor& clean,
                                          const at::Tensor& images, const BatchContext& context)>;

/// What one run of the loop trains, with what, and whom it tells.
struct TrainingLoop {
  std::string name;               ///< "amalgamate" | "teach": opens errors and epoch lines
  std::string label;              ///< what the epoch line names after `name` (method, task)
  const TrainOptions& train;      ///< epochs, augmentation, seed, divergence guard
  int64_t checkpoint_every;       ///< steps between checkpoints (0 = only at epoch ends)
  NetworkImpl& network;           ///< the network trained
  torch::nn::Module& parts;       ///< the objective's trainable parts (an empty module: none)
  BatchLoss loss;                 ///< the loss of one batch
  BatchLoader& loader;            ///< the training images, sharded over the ranks
  ScheduledAdam& optimizer;       ///< over the network's and the parts' parameter groups
  Replicas& replicas;             ///< this rank's share of a data-parallel run (or none)
  RunCheckpointer& checkpointer;  ///< where the run's state goes
  c10::Device device;             ///< where the batches go
  StepCallback on_step;           ///< after every step (may be empty)
  EpochCallback on_epoch;         ///< after every epoch (may be empty)
};

/// Trains from where `progress` stands to train.epochs (or train.steps), checkpointing on the way;
/// returns the history of every epoch, the resumed ones included. Throws Interrupted on
/// SIGINT/SIGTERM (after a checkpoint) and Error on a non-finite or diverging loss (naming the
/// step).
std::vector<EpochStats> run_training_loop(TrainingLoop& loop, RunProgress progress);

/// The config fields (JSON pointers into a run's options) a resumed run may change; everything
/// else must match the checkpoint's fingerprint.
const std::vector<std::string>& resumable_fields();

/// `options` without resumable_fields(): what a checkpoint's fingerprint records of them.
nlohmann::json without_resumable_fields(nlohmann::json options);

}  // namespace amalgam

// Amalgamation: trains one student from frozen teachers and unlabeled images.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "data/dataset.h"
#include "method/cfl_objective.h"
#include "method/common_feature_block.h"
#include "method/head_layout.h"
#include "method/hint_adapters.h"
#include "models/layers.h"
#include "teachers/teacher.h"
#include "training/optimizer.h"

namespace amalgam {

class ProcessGroup;

/// Everything that defines an amalgamation run.
struct AmalgamateOptions {
  ModelSpec student;  ///< student architecture (input and classes come from teachers)
  /// A ready-made student (e.g. a user's TorchScript file) used instead of building `student`;
  /// its logits must cover every teacher's classes, in teacher order.
  Network student_network;
  ObjectiveOptions objective;    ///< method and loss weights
  int64_t common_channels = 32;  ///< h of the common feature space
  int64_t extractor_blocks = 2;  ///< residual units in the shared extractor
  TrainOptions train;            ///< epochs, batch size, learning rates, seed, device
  /// Compute the teachers' outputs once and look them up in later epochs, when they fit in
  /// teacher_cache_limit bytes; otherwise the teachers run on every batch.
  bool cache_teachers = true;
  /// cfl ablation: keep the common space (align layers, extractor) at its random initialisation.
  bool fixed_common_space = false;
  int64_t teacher_cache_limit = int64_t{8} << 30;  ///< bytes the cache may hold
  std::string checkpoint_path;                     ///< write the run state here ("" = never)
  int64_t checkpoint_every = 200;  ///< steps between checkpoints (0 = only at epoch ends)
  bool resume = false;             ///< continue the run saved at checkpoint_path
  int64_t log_every = 50;          ///< commands: steps between progress lines and metrics records
  /// Train in channels-last (NHWC) layout, oneDNN's preferred one (bench: 1-7% faster per step
  /// here, not bitwise equal to the default layout).
  bool channels_last = false;
  /// Data-parallel run: this process is one rank of `group` (null: it runs alone). batch_size
  /// stays the whole step's batch, split evenly over the ranks; every rank must call amalgamate
  /// with the same options and data. Only rank 0 should be given checkpoint_path and observers.
  std::shared_ptr<ProcessGroup> group;
  /// Data-parallel runs: the student's zoo BatchNorm layers normalise with the whole batch's
  /// moments instead of each rank's shard (SyncBatchNorm).
  bool sync_batchnorm = false;
};

/// Mean loss terms over one epoch.
struct EpochStats {
  int64_t epoch = 0;             ///< 1-based
  double total = 0;              ///< mean total loss
  double kd = 0;                 ///< mean soft-target term
  double mmd = 0;                ///< mean summed MMD²
  double recon = 0;              ///< mean summed reconstruction MSE
  double images_per_second = 0;  ///< throughput of the epoch
  double seconds = 0;            ///< wall time of the epoch
};

/// What amalgamate() produced.
struct AmalgamationResult {
  Network student;                    ///< the trained student, in eval mode
  CommonFeatureBlock block{nullptr};  ///< the common feature block (cfl only)
  HintAdapters hints{nullptr};        ///< the hint adapters (fitnet only)
  HeadLayout head;                    ///< which head slice answers which task
  ModelSpec student_spec;             ///< the student's resolved options
  std::vector<EpochStats> history;    ///< per epoch
  double seconds = 0;                 ///< wall time
};

/// Called after every epoch with the student (e.g. to score it on a validation split).
using EpochCallback = std::function<void(const EpochStats&, NetworkImpl& student)>;

/// One optimisation step, as the step hook sees it.
struct StepRecord {
  int64_t epoch = 0;            ///< 0-based epoch
  int64_t step = 0;             ///< 0-based step within the epoch
  int64_t global_step = 0;      ///< 0-based step over the run
  int64_t steps_per_epoch = 0;  ///< steps in every epoch of the run
  at::Tensor indices;           ///< int64 [b]: transfer-set positions of this rank's batch share
  double total = 0;             ///< total loss of the step
  double kd = 0;                ///< soft-target term
  double mmd = 0;               ///< summed MMD²
  double recon = 0;             ///< summed reconstruction MSE
  double hint = 0;              ///< summed FitNet hint MSE
  std::vector<double> lrs;      ///< learning rate of each parameter group used by the step
  double seconds = 0;           ///< wall time of the step
};

/// Optional observers of a run (benchmarks, metrics); they must not change the training.
struct TrainingHooks {
  /// After every module is built and before the first step.
  std::function<void(NetworkImpl& student, CommonFeatureBlockImpl* block)> on_start;
  /// After every optimisation step.
  std::function<void(const StepRecord&)> on_step;
};

/// Data-parallel runs (options.group set): throws Error on every rank unless all ranks were given
/// the same options, teachers and transfer images and the batch splits evenly over them; a
/// caller checks this before writing anything (amalgamate checks again).
void check_ranks_agree(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                       const AmalgamateOptions& options);

/// Trains a student from `teachers` on `transfer`. Only images reach this function: the
/// transfer set carries no labels. `cache`, when given, must hold the teachers' outputs for
/// `transfer` (cache_teacher_outputs); several runs on the same data can share one.
AmalgamationResult amalgamate(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                              const AmalgamateOptions& options, const EpochCallback& on_epoch = {},
                              const TeacherOutputCache* cache = nullptr,
                              const TrainingHooks& hooks = {});

}  // namespace amalgam

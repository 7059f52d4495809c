// Amalgamation: trains one student from frozen teachers and unlabeled images.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/head_layout.h"
#include "data/transfer_set.h"
#include "method/objective.h"
#include "models/layers.h"
#include "routing/gate_calibration.h"
#include "teachers/teacher.h"
#include "training/optimizer.h"
#include "training/training_loop.h"

namespace amalgam {

class ProcessGroup;

/// The amalgamate command's --min-steps. A student distilled in a few dozen steps stays far
/// below its teachers; one that takes about a thousand comes within about a point of them
/// (docs/results.md, "Patient schedules"). Library runs default to TrainOptions' 0.
constexpr int64_t kDefaultMinSteps = 1000;

/// Everything that defines an amalgamation run, as pure values: config.json's "options", and
/// what --resume reads back.
struct AmalgamateConfig {
  ModelSpec student;          ///< student architecture (input and classes come from teachers)
  ObjectiveConfig objective;  ///< method, loss weights and the method's parts
  TrainOptions train;         ///< epochs, batch size, learning rates, seed, device
  /// Compute the teachers' outputs once and look them up in later epochs, when they fit in
  /// teacher_cache_limit bytes; otherwise the teachers run on every batch.
  bool cache_teachers = true;
  int64_t teacher_cache_limit = int64_t{8} << 30;  ///< bytes the cache may hold
  int64_t checkpoint_every = 200;  ///< steps between checkpoints (0 = only at epoch ends)
  int64_t log_every = 50;          ///< commands: steps between progress lines and metrics records
  /// Train in channels-last (NHWC) layout, oneDNN's preferred one (bench: 1-7% faster per step
  /// here, not bitwise equal to the default layout).
  bool channels_last = false;
  /// With augmentation: the teachers see each image un-augmented (their outputs can then be
  /// cached) while the student sees the augmented view; off, the teachers see the same view.
  bool teachers_see_clean_images = false;
  /// Data-parallel runs: the student's zoo BatchNorm layers normalise with the whole batch's
  /// moments instead of each rank's shard (SyncBatchNorm).
  bool sync_batchnorm = false;
};

/// Optional observers of a run (benchmarks, metrics); they must not change the training.
struct TrainingHooks {
  /// After every module is built and before the first step.
  std::function<void(NetworkImpl& student, ObjectiveImpl& objective)> on_start;
  StepCallback on_step;  ///< after every optimisation step
};

/// What a run is handed at run time besides its config: never serialised.
struct RunContext {
  /// A ready-made student (e.g. a user's TorchScript file) used instead of building
  /// config.student; its logits must cover every teacher's classes, in teacher order.
  Network student_network;
  /// Data-parallel run: this process is one rank of `group` (null: it runs alone). The config's
  /// batch_size stays the whole step's batch, split evenly over the ranks; every rank must call
  /// amalgamate with the same config and data. Only rank 0 should get checkpoint_path and
  /// observers.
  std::shared_ptr<ProcessGroup> group;
  std::string checkpoint_path;  ///< write the run state here ("" = never)
  bool resume = false;          ///< continue the run saved at checkpoint_path
  /// The teachers' outputs for the transfer set (cache_teacher_outputs), shared by several runs
  /// on the same data; null: the run caches (or not) by its config.
  const TeacherOutputCache* cache = nullptr;
  EpochCallback on_epoch;  ///< after every epoch
  TrainingHooks hooks;     ///< after set-up and every step
};

/// What amalgamate() produced.
struct AmalgamationResult {
  Network student;                  ///< the trained student, in eval mode
  Objective objective;              ///< the objective with its trained parts, in eval mode
  HeadLayout head;                  ///< which head slice answers which task
  ModelSpec student_spec;           ///< the student's resolved options
  std::vector<EpochStats> history;  ///< per epoch
  GateCalibration gate;             ///< the task gate's calibration after training, if any
  double seconds = 0;               ///< wall time
};

/// Data-parallel runs (`group` set): throws Error on every rank unless all ranks were given the
/// same config, teachers and transfer images and the batch splits evenly over them; a caller
/// checks this before writing anything (amalgamate checks again).
void check_ranks_agree(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                       const AmalgamateConfig& config, ProcessGroup* group);

/// Throws Error naming the option when `config` is out of range or asks for views that cannot go
/// together (teachers on clean images with a crop or mixing the student sees); amalgamate checks
/// it again.
void validate(const AmalgamateConfig& config);

/// Trains a student from `teachers` on `transfer` for epochs_for(config.train, transfer size)
/// epochs. Only images reach this function: the transfer set carries no labels.
AmalgamationResult amalgamate(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                              const AmalgamateConfig& config, const RunContext& context = {});

}  // namespace amalgam

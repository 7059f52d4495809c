// Supervised training of one teacher on one task's labeled images, on the one training loop.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "models/layers.h"
#include "training/optimizer.h"

namespace amalgam {

/// What teach() produced.
struct TeachResult {
  Network network;                 ///< the trained network, in eval mode
  std::vector<double> epoch_loss;  ///< mean training cross-entropy per epoch (resumed ones too)
  /// Validation accuracy after each epoch this call trained (empty without val); a run resumed
  /// after its last epoch gets the finished network's one.
  std::vector<double> val_accuracy;
  double seconds = 0;  ///< wall time of this call
};

/// Where a teaching run keeps its state, for a command that must survive a kill.
struct TeachRun {
  std::string checkpoint_path;       ///< write the run state here ("" = never)
  bool resume = false;               ///< continue the run saved at checkpoint_path
  int64_t checkpoint_every = 0;      ///< steps between checkpoints (0 = only at epoch ends)
  std::function<void()> on_resumed;  ///< after the checkpoint was restored (may be empty)
};

/// The training options teach() is meant to be called with: TrainOptions' defaults, but one
/// learning rate for the head and the backbone (the multiplier the zoo teachers of
/// docs/results.md were trained with; a from-scratch network has no backbone to protect).
TrainOptions teach_defaults();

/// Trains a zoo network with `spec` (num_classes set to the task's size) on `train`, whose labels
/// are task-local (select_task), with cross-entropy; `val` (task-local too), if non-empty, is
/// scored every epoch. Resumes bitwise from `run.checkpoint_path` when `run.resume`.
TeachResult teach(ModelSpec spec, const TaskSpec& task, const LabeledImages& train,
                  const LabeledImages& val, const TrainOptions& options, const TeachRun& run = {});

}  // namespace amalgam

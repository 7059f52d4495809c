// Supervised training of one teacher on one task's labeled images.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"
#include "models/layers.h"
#include "training/optimizer.h"

namespace amalgam {

/// What teach() produced.
struct TeachResult {
  Network network;                   ///< the trained network, in eval mode
  std::vector<double> epoch_loss;    ///< mean training cross-entropy per epoch
  std::vector<double> val_accuracy;  ///< validation accuracy per epoch (empty without val)
  double seconds = 0;                ///< wall time
};

/// Trains a zoo network with `spec` (num_classes set to the task's size) on `train`, whose labels
/// are task-local (select_task). `val` (task-local too), if non-empty, is scored every epoch.
TeachResult teach(ModelSpec spec, const TaskSpec& task, const LabeledImages& train,
                  const LabeledImages& val, const TrainOptions& options);

}  // namespace amalgam

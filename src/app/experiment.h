// Pieces the built-in experiments (demo, reproduce) share: data, teacher plans, cached teachers.
#pragma once

#include <string>

#include "data/dataset.h"
#include "models/layers.h"
#include "teachers/teacher.h"
#include "training/optimizer.h"

namespace amalgam {

/// A teacher to train: its task and its architecture.
struct TeacherPlan {
  TaskSpec task;   ///< classes (with Fashion-MNIST names)
  ModelSpec spec;  ///< architecture; num_classes is set from the task
};

/// The images of an experiment.
struct ExperimentData {
  TrainValSplit split;  ///< training images (also the transfer set) and the validation split
  LabeledImages test;   ///< the test split: scored, never used for a choice
};

/// Loads train and test from an IDX folder, holds out `val_size` training images (split seed
/// kDefaultSplitSeed), then keeps at most `train_limit` training and `test_limit` test images
/// (0 = all).
ExperimentData load_experiment_data(const std::string& dir, int64_t val_size, int64_t train_limit,
                                    int64_t test_limit, uint64_t seed);

/// parse_task with Fashion-MNIST class names attached.
TaskSpec fashion_task(const std::string& text);

/// A zoo architecture with width and depth.
ModelSpec zoo_spec(const std::string& arch, int64_t width, int64_t depth);

/// Returns the teacher stored at `path` when its sidecar records the same recipe (plan, training
/// options, data); otherwise trains it on `data`, stores it there and adds the training time to
/// `*seconds`.
Teacher obtain_teacher(const TeacherPlan& plan, const TrainValSplit& data, const std::string& path,
                       const TrainOptions& train, const std::string& data_dir, bool retrain,
                       double* seconds);

}  // namespace amalgam

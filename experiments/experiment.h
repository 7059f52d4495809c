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
  TaskSpec task;       ///< classes (with Fashion-MNIST names)
  ModelSpec spec;      ///< architecture; num_classes is set from the task
  int64_t epochs = 0;  ///< training epochs (0: the protocol's)
};

/// The images of an experiment.
struct ExperimentData {
  TrainValSplit split;  ///< training images (also the transfer set) and the validation split
  LabeledImages test;   ///< the test split: scored, never used for a choice
  /// The labeled images the teachers learn from, when not `split` (undefined images: `split`).
  TrainValSplit teacher_split;
  /// What the teachers learn from: `teacher_split` when set, else `split`.
  const TrainValSplit& teacher_data() const {
    return teacher_split.train.images.defined() ? teacher_split : split;
  }
};

/// Loads train and test from an IDX folder, holds out `val_size` training images (split seed
/// kDefaultSplitSeed), then keeps at most `train_limit` training and `test_limit` test images
/// (0 = all).
ExperimentData load_experiment_data(const std::string& dir, int64_t val_size, int64_t train_limit,
                                    int64_t test_limit, uint64_t seed);

/// Digits' images held out of the cross-domain set-up's training set, for validation and test.
struct DigitsHoldOut {
  int64_t val = 200;   ///< validation images (choices only)
  int64_t test = 400;  ///< test images (reports only)
};

/// Two visually different real domains in one experiment: Fashion-MNIST clothing (class ids
/// 0-9, taken from `fashion`) and handwritten digits (ids 10-19, `digits` with those labels).
/// The digits are split by a seeded shuffle as `hold_out` says; each split then takes
/// `clothing_per_digit` Fashion images per digit image from the same split of `fashion`, so every
/// split holds both domains in one proportion (3: a quarter digits). The clothing teacher learns
/// from all of `fashion`'s training images, the digits teacher from the digits' training split.
ExperimentData cross_domain_data(const ExperimentData& fashion, const LabeledImages& digits,
                                 const DigitsHoldOut& hold_out, int64_t clothing_per_digit);

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

// The amalgamation objective: one module whose terms follow its config's parts — concatenated or
// routed soft targets, and no feature term, the common space or hints — owning the trainable
// parts those terms need. What configures it is method/objective_config.h.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "data/head_layout.h"
#include "method/common_feature_block.h"
#include "method/hint_adapters.h"
#include "method/loss_values.h"
#include "method/objective_config.h"
#include "models/network.h"
#include "routing/routed_targets.h"

namespace amalgam {

/// What an objective is built for: its config and the shapes and head of the run.
struct ObjectiveSetup {
  ObjectiveConfig config;                            ///< the objective's options
  std::vector<std::vector<int64_t>> teacher_shapes;  ///< each teacher's feature map {C,H,W}
  std::vector<int64_t> student_shape;                ///< the student's feature map {C,H,W}
  HeadLayout head;                                   ///< the student's head, in teacher order
  double block_lr_mult =
      10.0;  ///< lr multiplier of the objective's parts (TrainOptions::block_lr_mult)
  /// Every teacher's logits for every transfer image ([N,K_i] each, on the CPU), for routed
  /// targets, which estimate which teacher answers for which image; computed when first called.
  /// Empty (a --dry-run, which reads no images): the routing is planned, not estimated.
  std::function<std::vector<at::Tensor>()> transfer_logits;
  /// transfer_logits cover an evenly spaced sample of a streamed transfer set, not every image:
  /// the routing is estimated on them and each batch is routed from its own teachers' logits.
  bool route_each_batch = false;
};

/// What a loss may know of its batch besides the networks' outputs.
struct BatchContext {
  /// Widens distribution terms (MMD, the gate's ranking) to the whole batch in data-parallel
  /// runs; may be empty.
  BatchGather gather;
  at::Tensor indices;   ///< int64 [B]: transfer-set positions of the batch's images
  double progress = 0;  ///< share of the run's steps done before this one, in [0, 1)
};

/// The objective of every method. Its trainable parts are registered submodules ("block" for
/// the common space, "hints" for the hint adapters), so saving the module saves all that a run
/// checkpoint needs of it.
class ObjectiveImpl : public torch::nn::Module {
 public:
  /// Builds the parts setup.config has (they draw from LibTorch's generator) and, for routed
  /// targets with two or more teachers, estimates the routing from setup.transfer_logits.
  explicit ObjectiveImpl(const ObjectiveSetup& setup);

  /// The loss of one batch: the student's outputs against the teachers'. Terms: "kd" (the soft
  /// targets), "task" (routed: the task gate), "mmd" and "recon" (common space), "hint".
  LossTerms loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                 const BatchContext& batch);
  /// Its trainable parts as optimiser groups (none without a feature term).
  std::vector<ParamGroup> parameter_groups();
  /// The common feature block, where the method learns one (embedding, probes, student files).
  CommonFeatureBlockImpl* common_space() { return block_ ? block_.get() : nullptr; }
  /// What --dry-run shows of its parts (null when it has none).
  nlohmann::json summary();
  /// When the student learns to route (its head's task slices are a gate): the share of the
  /// transfer images routed to each task by the routing it learns from, to calibrate the gate to
  /// after training; empty otherwise.
  std::vector<double> gate_shares() const;
  /// The routing the student learns from (null when the method does not route).
  const RoutedTargets* routed_targets() const { return routed_ ? &*routed_ : nullptr; }

 private:
  double feature_weight(double progress) const;

  ObjectiveConfig config_;
  double block_lr_mult_;
  size_t teachers_;
  CommonFeatureBlock block_{nullptr};
  HintAdapters hints_{nullptr};
  std::optional<RoutedTargets> routed_;
};

/// Shared handle to the objective.
using Objective = std::shared_ptr<ObjectiveImpl>;

/// Validates setup.config and builds its objective.
Objective make_objective(const ObjectiveSetup& setup);

/// The soft-target term: T² · softCE(student/T, softmax(concatenated teacher logits / T)).
at::Tensor soft_target_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                            double temperature);

}  // namespace amalgam

// Routed soft targets: the student's targets factored into P(task | image) x the responsible
// teacher's P(class | task). Each teacher is imitated within its own slice of the student's head,
// weighted per image by how responsible it is for the image, and the slices' softmax mass (the
// student's own task gate, no extra network) learns which task an image belongs to.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <optional>
#include <vector>

#include "data/task.h"
#include "routing/routing.h"

namespace amalgam {

/// Maps a process's share of a batch to the whole batch (data-parallel runs: every rank's rows,
/// differentiably); empty when one process holds the whole batch.
using BatchGather = std::function<at::Tensor(const at::Tensor&)>;

/// The routing estimated once for the transfer set, and the terms it gives each batch.
class RoutedTargets {
 public:
  /// Estimates the routing from every teacher's logits on every transfer image ([N,K_i] each)
  /// and logs the shares it routes to each of `tasks` (the teachers', in order); `temperature`
  /// is the soft targets'. `route_each_batch`: the logits are a sample's, and each batch is
  /// routed from its own teachers' logits by the estimate (apply_routing), not looked up by index.
  RoutedTargets(const std::vector<at::Tensor>& transfer_logits, RoutingOptions options,
                const std::vector<TaskSpec>& tasks, double temperature,
                bool route_each_batch = false);

  /// Per teacher, each image's weight [B] for its within-slice targets and feature terms
  /// (SliceWeights), from the images' transfer-set positions `indices` and the teachers' logits.
  std::vector<at::Tensor> teacher_weights(const at::Tensor& indices,
                                          const std::vector<at::Tensor>& teacher_logits) const;
  /// Whether every teacher weighs every image fully (SliceWeights::kUniform).
  bool uniform() const { return options_.slice_weights == SliceWeights::kUniform; }

  /// Each teacher's soft targets within its own slice of `student_logits`, weighted per image.
  at::Tensor within_task_loss(const at::Tensor& student_logits,
                              const std::vector<at::Tensor>& teacher_logits,
                              const std::vector<at::Tensor>& weights) const;

  /// Cross-entropy of the student's task gate against the routing (RoutingRule). `progress` is
  /// the share of the run done (the gate's forget ramp); `gather` widens its ranking to the whole
  /// batch in data-parallel runs.
  at::Tensor task_loss(const at::Tensor& student_logits,
                       const std::vector<at::Tensor>& teacher_logits, const at::Tensor& indices,
                       const BatchGather& gather, double progress) const;

  /// Per task, the share of transfer images the gate should route there after training (its
  /// calibration); empty where the gate follows the concatenated logits or is not calibrated.
  std::vector<double> gate_shares() const;

  /// What --dry-run shows: the scores' agreement, the rule, the prior, the routed shares and
  /// the confident images.
  nlohmann::json summary() const;
  /// Whether the label-free check set the rule to concatenated (RoutingOptions::label_free_check).
  bool fell_back() const { return fell_back_; }
  /// The rule it trains with (after the label-free check), as --routing names it.
  std::string rule_name() const;
  /// The teachers' score agreement over the transfer images (score_agreement).
  double agreement() const { return routing_.agreement; }

 private:
  at::Tensor concatenated_target_shares(const std::vector<at::Tensor>& teacher_logits) const;
  at::Tensor small_loss(const at::Tensor& nll, const at::Tensor& confident, const at::Tensor& task,
                        const BatchGather& gather, double progress) const;
  std::vector<double> routed_shares() const;
  /// The routing of a batch: rows `indices` of the estimate, or its teachers' logits routed.
  TaskRouting batch_routing(const at::Tensor& indices,
                            const std::vector<at::Tensor>& teacher_logits) const;
  std::string describe_label_free_check() const;

  RoutingOptions options_;
  std::vector<int64_t> sizes_;
  double temperature_;
  TaskRouting routing_;
  std::optional<FittedRouting> fitted_;  ///< set when each batch is routed by its own logits
  bool fell_back_ = false;
};

}  // namespace amalgam

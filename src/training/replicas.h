// The data-parallel side of an amalgamation run, in one place: every call is a no-op (or the
// identity) when the run has a single process.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <optional>
#include <vector>

#include "method/loss_values.h"
#include "method/objective.h"
#include "models/network.h"

namespace torch::nn {
class Module;
}

namespace amalgam {

class GradientAverager;
class ProcessGroup;

/// Keeps the ranks' replicas of the trained modules equal and their step decisions agreed.
class Replicas {
 public:
  /// `group` null: a single-process run.
  explicit Replicas(ProcessGroup* group);
  ~Replicas();
  /// Starts the replicas from rank 0's state and prepares gradient averaging for `groups`
  /// (parameters that require a gradient); `sync_batchnorm` makes the student's zoo BatchNorm
  /// layers use the whole batch's moments.
  void start(NetworkImpl& student, const std::vector<torch::nn::Module*>& trained,
             const std::vector<ParamGroup>& groups, bool sync_batchnorm);
  /// Number of ranks (1 alone).
  int64_t ranks() const;
  /// This rank's position in a step's whole batch: its first image's index.
  int64_t first_image(int64_t shard_images) const;
  /// Maps this rank's rows to the whole batch's, differentiably (empty alone).
  BatchGather gather() const;
  /// Makes `loss` the mean over the ranks and `signal` the largest stop signal any rank got.
  void agree(LossValues& loss, int& signal) const;
  /// Replaces every gradient by its mean over the ranks.
  void average_gradients();
  /// Replaces floating-point buffers (BatchNorm statistics, tracked per shard) by their mean.
  void average_buffers(const std::vector<torch::nn::Module*>& modules) const;
  /// Detaches the student from the group (it outlives the run's process group).
  void finish(NetworkImpl& student) const;

 private:
  ProcessGroup* group_;
  std::unique_ptr<GradientAverager> averager_;
};

}  // namespace amalgam

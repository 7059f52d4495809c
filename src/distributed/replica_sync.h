// Keeping the ranks' replicas of the trained modules equal: the same start (rank 0's weights) and
// the same update (gradients averaged over the ranks, in buckets).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace torch::nn {
class Module;
}

namespace amalgam {

class ProcessGroup;

/// Averages the gradients of a fixed set of parameters over the ranks, packed into flat buckets
/// of about `bucket_bytes` so a step costs a few all-reduces instead of one per tensor.
class GradientAverager {
 public:
  GradientAverager(ProcessGroup& group, std::vector<at::Tensor> parameters,
                   int64_t bucket_bytes = int64_t{25} << 20);
  /// Replaces every parameter's gradient by its mean over the ranks (a missing gradient counts
  /// as zeros and is then defined).
  void average();
  /// Buckets one step all-reduces.
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<at::Tensor> parameters;
    at::Tensor flat;
  };
  ProcessGroup& group_;
  std::vector<Bucket> buckets_;
};

/// Overwrites every parameter and buffer of `module` with rank `root`'s.
void broadcast_module_state(ProcessGroup& group, torch::nn::Module& module, int root = 0);

/// Replaces every floating-point buffer (e.g. BatchNorm running statistics, which each rank
/// tracks on its own shard) by its mean over the ranks.
void average_buffers(ProcessGroup& group, torch::nn::Module& module);

}  // namespace amalgam

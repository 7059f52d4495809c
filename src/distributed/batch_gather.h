// Batch statistics over the whole data-parallel batch: each rank holds a shard of the batch, and
// a term such as the MMD compares whole batches, so the shards are gathered with autograd.
#pragma once

#include <ATen/core/Tensor.h>

namespace amalgam {

class ProcessGroup;

/// Every rank's `local` [b,...] concatenated in rank order [W*b,...]. Differentiable: the
/// gradient that reaches `local` is its slice of the gathered gradient times W, so that after
/// gradients are averaged over the ranks a loss of the gathered batch gets its exact gradient
/// (every rank computes the same loss from the same gathered batch).
at::Tensor gather_batch(const at::Tensor& local, ProcessGroup& group);

}  // namespace amalgam

// Statistics of the whole data-parallel batch inside the autograd graph: each rank holds a shard
// of the batch, while the MMD compares whole batches and synchronised BatchNorm normalises with
// the whole batch's moments. Gradients are scaled so that, once parameter gradients are averaged
// over the ranks, they are those of one process on the whole batch.
#pragma once

#include <ATen/core/Tensor.h>

namespace amalgam {

class ProcessGroup;

/// Every rank's `local` [b,...] concatenated in rank order [W*b,...]. Differentiable: the
/// gradient that reaches `local` is its slice of the gathered gradient times W, so that after
/// gradients are averaged over the ranks a loss of the gathered batch gets its exact gradient
/// (every rank computes the same loss from the same gathered batch).
at::Tensor gather_batch(const at::Tensor& local, ProcessGroup& group);

/// Every rank's `local` [k] stacked in rank order [W,k]. Differentiable for results that differ
/// between ranks (each rank's own loss): the gradient that reaches `local` is the sum over the
/// ranks of their gradients of its row.
at::Tensor stack_over_ranks(const at::Tensor& local, ProcessGroup& group);

}  // namespace amalgam

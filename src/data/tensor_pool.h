// Batch buffers handed out again once nobody holds them, so a streamed batch is written into
// pages the process already has.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <mutex>
#include <vector>

namespace amalgam {

/// A few float tensors reused across batches. Why: a 224-px batch of 64 is 38.5 MB, above
/// glibc's mmap threshold, so each fresh one was mapped, zero-filled page by page on first write
/// and unmapped again; those page faults took 10% of the crop view's time
/// (bench/input_pipeline.sh, perf).
class TensorPool {
 public:
  /// Keeps at most `capacity` tensors (a batch in flight, one decoding, one spare).
  explicit TensorPool(size_t capacity = 4) : capacity_(capacity) {}
  /// A float tensor of `sizes`, uninitialised: one of the pool's that nothing else refers to
  /// (neither the tensor nor a view of its storage), or a new one, kept when there is room.
  at::Tensor take(at::IntArrayRef sizes);

 private:
  size_t capacity_;
  std::mutex mutex_;
  std::vector<at::Tensor> tensors_;
};

}  // namespace amalgam

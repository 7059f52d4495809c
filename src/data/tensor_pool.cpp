#include "data/tensor_pool.h"

#include <torch/torch.h>

namespace amalgam {

at::Tensor TensorPool::take(at::IntArrayRef sizes) {
  const std::lock_guard<std::mutex> lock(mutex_);
  for (const at::Tensor& tensor : tensors_)
    // Only the pool holds it: no tensor, view or saved autograd input still reads its storage.
    if (tensor.use_count() == 1 && tensor.storage().use_count() == 1 && tensor.sizes() == sizes)
      return tensor;
  at::Tensor fresh = torch::empty(sizes, torch::kFloat32);
  if (tensors_.size() < capacity_) {
    tensors_.push_back(fresh);
  } else {
    // Full: the first one nothing holds makes room (a batch of another shape, the last one).
    for (at::Tensor& tensor : tensors_)
      if (tensor.use_count() == 1 && tensor.storage().use_count() == 1) {
        tensor = fresh;
        break;
      }
  }
  return fresh;
}

}  // namespace amalgam

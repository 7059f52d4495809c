#include "distributed/replica_sync.h"

#include <torch/torch.h>

#include "distributed/process_group.h"

namespace amalgam {

GradientAverager::GradientAverager(ProcessGroup& group, std::vector<at::Tensor> parameters,
                                   int64_t bucket_bytes)
    : group_(group) {
  // Reverse order, as backward produces them; a bucket holds one dtype on one device.
  int64_t bytes = 0;
  for (auto it = parameters.rbegin(); it != parameters.rend(); ++it) {
    const at::Tensor& p = *it;
    const bool fits = !buckets_.empty() &&
                      bytes + p.nbytes() <= static_cast<size_t>(bucket_bytes) &&
                      buckets_.back().parameters.front().scalar_type() == p.scalar_type() &&
                      buckets_.back().parameters.front().device() == p.device();
    if (!fits) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().parameters.push_back(p);
    bytes += static_cast<int64_t>(p.nbytes());
  }
  for (auto& b : buckets_) {
    int64_t n = 0;
    for (const auto& p : b.parameters) n += p.numel();
    b.flat = torch::empty({n}, b.parameters.front().options());
  }
}

void GradientAverager::average() {
  std::vector<at::Tensor> flats;
  for (auto& b : buckets_) {
    int64_t offset = 0;
    for (auto& p : b.parameters) {
      at::Tensor slot = b.flat.narrow(0, offset, p.numel());
      if (p.grad().defined())
        slot.copy_(p.grad().reshape({-1}));
      else
        slot.zero_();
      offset += p.numel();
    }
    flats.push_back(b.flat);
  }
  group_.all_reduce_sum(flats);
  const double scale = 1.0 / group_.size();
  for (auto& b : buckets_) {
    b.flat.mul_(scale);
    int64_t offset = 0;
    for (auto& p : b.parameters) {
      const at::Tensor mean = b.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(mean);
      else
        p.mutable_grad() = mean.clone();
      offset += p.numel();
    }
  }
}

void broadcast_module_state(ProcessGroup& group, torch::nn::Module& module, int root) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters()) group.broadcast(p, root);
  for (auto& b : module.buffers()) group.broadcast(b, root);
}

void average_buffers(ProcessGroup& group, torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> floating;
  for (auto& b : module.buffers())
    if (b.is_floating_point()) floating.push_back(b);
  if (floating.empty()) return;
  group.all_reduce_sum(floating);
  for (auto& b : floating) b.div_(group.size());
}

}  // namespace amalgam

#include "training/replicas.h"

#include <torch/torch.h>

#include "core/error.h"
#include "distributed/autograd_collectives.h"
#include "distributed/process_group.h"
#include "distributed/replica_sync.h"
#include "models/layers.h"

namespace amalgam {

Replicas::Replicas(ProcessGroup* group) : group_(group) {}

Replicas::~Replicas() = default;

void Replicas::start(NetworkImpl& student, const std::vector<torch::nn::Module*>& trained,
                     const std::vector<ParamGroup>& groups, bool sync_batchnorm) {
  if (group_ == nullptr) return;
  if (sync_batchnorm) {
    ProcessGroup* group = group_;
    const int64_t layers = set_statistics_gather(
        student, [group](const at::Tensor& local) { return stack_over_ranks(local, *group); });
    AMALGAM_CHECK(layers > 0,
                  "--sync-batchnorm: the student has no zoo BatchNorm layers to synchronise "
                  "(a TorchScript student's BatchNorm stays per rank)");
  }
  for (auto* module : trained) broadcast_module_state(*group_, *module);
  std::vector<at::Tensor> parameters;
  for (const auto& g : groups)
    for (const auto& p : g.params)
      if (p.requires_grad()) parameters.push_back(p);
  averager_ = std::make_unique<GradientAverager>(*group_, parameters);
}

int64_t Replicas::ranks() const {
  return group_ != nullptr ? group_->size() : 1;
}

int64_t Replicas::first_image(int64_t shard_images) const {
  return group_ != nullptr ? group_->rank() * shard_images : 0;
}

BatchGather Replicas::gather() const {
  if (group_ == nullptr) return {};
  ProcessGroup* group = group_;
  return [group](const at::Tensor& local) { return gather_batch(local, *group); };
}

void Replicas::agree(LossValues& loss, int& signal) const {
  if (group_ == nullptr) return;
  const std::vector<double> mine = loss.numbers();
  std::vector<at::Tensor> sums = {torch::tensor(mine, torch::kFloat64)};
  group_->all_reduce_sum(sums);
  std::vector<double> mean(mine.size());
  for (size_t i = 0; i < mine.size(); ++i)
    mean[i] = sums[0][static_cast<int64_t>(i)].item<double>() / group_->size();
  loss.set_numbers(mean);
  at::Tensor stop = torch::tensor({static_cast<int64_t>(signal)}, torch::kInt64);
  group_->all_reduce_max(stop);
  signal = static_cast<int>(stop.item<int64_t>());
}

void Replicas::average_gradients() {
  if (averager_) averager_->average();
}

void Replicas::average_buffers(const std::vector<torch::nn::Module*>& modules) const {
  if (group_ == nullptr) return;
  for (auto* module : modules) amalgam::average_buffers(*group_, *module);
}

void Replicas::finish(NetworkImpl& student) const {
  set_statistics_gather(student, {});
}

}  // namespace amalgam

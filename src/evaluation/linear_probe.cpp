#include "evaluation/linear_probe.h"

#include <torch/torch.h>

#include "core/error.h"

namespace amalgam {

double linear_probe_accuracy(const at::Tensor& train_x, const at::Tensor& train_y,
                             const at::Tensor& test_x, const at::Tensor& test_y, int64_t classes,
                             int64_t steps, uint64_t seed) {
  AMALGAM_CHECK(train_x.size(0) == train_y.size(0) && test_x.size(0) == test_y.size(0),
                "linear probe: features and labels differ in count");
  AMALGAM_CHECK(train_x.size(0) > 0 && test_x.size(0) > 0, "linear probe: empty split");
  const at::Tensor xtr = train_x.flatten(1).to(torch::kFloat32);
  const at::Tensor xte = test_x.flatten(1).to(torch::kFloat32);
  const at::Tensor mean = xtr.mean(0, true);
  const at::Tensor std = xtr.std(0, true, true).clamp_min(1e-6);
  const at::Tensor a = (xtr - mean) / std, b = (xte - mean) / std;
  torch::manual_seed(seed);
  torch::nn::Linear probe(a.size(1), classes);
  torch::optim::Adam adam(probe->parameters(), torch::optim::AdamOptions(1e-2).weight_decay(1e-4));
  for (int64_t step = 0; step < steps; ++step) {
    adam.zero_grad();
    torch::cross_entropy_loss(probe->forward(a), train_y).backward();
    adam.step();
  }
  torch::NoGradGuard no_grad;
  return probe->forward(b).argmax(1).eq(test_y).to(torch::kFloat64).mean().item<double>();
}

}  // namespace amalgam

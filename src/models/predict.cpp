#include "models/predict.h"

#include <torch/torch.h>

#include <vector>

#include "core/error.h"
#include "data/dataset.h"

namespace amalgam {

at::Tensor predict_logits(NetworkImpl& network, const at::Tensor& images, int64_t batch_size) {
  AMALGAM_CHECK(batch_size > 0, "--batch-size: must be > 0");
  const bool was_training = network.is_training();
  network.eval();
  torch::NoGradGuard no_grad;
  const c10::Device device = device_of(network);
  std::vector<at::Tensor> chunks;
  for (int64_t begin = 0; begin < images.size(0); begin += batch_size) {
    const at::Tensor batch = to_network_input(images.slice(0, begin, begin + batch_size), device);
    // Under a caller's bf16 autocast (eval --precision) the logits come out bfloat16.
    chunks.push_back(network.forward(batch).logits.to(torch::kCPU, torch::kFloat32));
  }
  network.train(was_training);
  return torch::cat(chunks, 0);
}

}  // namespace amalgam

#include "models/network.h"

#include <torch/torch.h>

#include <unordered_set>

#include "core/error.h"

namespace amalgam {

std::vector<at::Tensor> NetworkImpl::backbone_parameters() {
  std::unordered_set<const void*> head;
  for (const auto& p : head_parameters()) head.insert(p.unsafeGetTensorImpl());
  std::vector<at::Tensor> result;
  for (const auto& p : parameters())
    if (!head.count(p.unsafeGetTensorImpl())) result.push_back(p);
  return result;
}

at::Tensor conform_input(const at::Tensor& images, const InputSpec& input) {
  at::Tensor x = images;
  const int64_t channels = x.size(1);
  if (channels != input.channels) {
    AMALGAM_CHECK((channels == 1 || channels == 3) && (input.channels == 1 || input.channels == 3),
                  "images have " + std::to_string(channels) + " channels but the network takes " +
                      std::to_string(input.channels) + " (1 and 3 convert into each other)");
    if (input.channels == 3) {
      x = x.expand({-1, 3, -1, -1});
    } else {  // stb_image's weights (77, 150, 29) / 256, so both paths to grey agree
      const at::Tensor luma =
          torch::tensor({77.0 / 256, 150.0 / 256, 29.0 / 256}, x.options()).view({1, 3, 1, 1});
      x = (x * luma).sum(1, /*keepdim=*/true);
    }
  }
  if (x.size(2) != input.height || x.size(3) != input.width)
    x = torch::nn::functional::interpolate(
        x, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{input.height, input.width})
               .mode(torch::kBilinear)
               .align_corners(false)
               .antialias(true));
  return x;
}

std::vector<int64_t> feature_shape(NetworkImpl& network) {
  const bool was_training = network.is_training();
  network.eval();
  torch::NoGradGuard no_grad;
  const InputSpec& in = network.input();
  const c10::Device device = device_of(network);
  const auto out = network.forward(
      torch::zeros({1, in.channels, in.height, in.width}, torch::TensorOptions().device(device)));
  network.train(was_training);
  if (!out.features.defined()) return {};
  return {out.features.size(1), out.features.size(2), out.features.size(3)};
}

c10::Device device_of(const torch::nn::Module& module) {
  for (const auto& p : module.parameters()) return p.device();
  return c10::Device(c10::kCPU);
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t total = 0;
  for (const auto& p : module.parameters()) total += p.numel();
  return total;
}

void to_memory_format(torch::nn::Module& module, at::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.parameters())
    if (p.dim() == 4) p.set_data(p.contiguous(format));
  for (auto& b : module.buffers())
    if (b.dim() == 4) b.set_data(b.contiguous(format));
}

void to_channels_last(torch::nn::Module& module) {
  to_memory_format(module, at::MemoryFormat::ChannelsLast);
}

void freeze(NetworkImpl& network) {
  network.eval();
  for (auto& p : network.parameters()) p.set_requires_grad(false);
}

}  // namespace amalgam

#include "models/resnet.h"

#include <torch/torch.h>

namespace amalgam {

BasicBlockImpl::BasicBlockImpl(int64_t in, int64_t out, int64_t stride) {
  conv1_ = register_module("conv1", ConvBN(in, out, 3, stride, Activation::kReLU));
  conv2_ = register_module("conv2", ConvBN(out, out, 3, 1, Activation::kNone));
  if (stride != 1 || in != out)
    shortcut_ = register_module("shortcut", ConvBN(in, out, 1, stride, Activation::kNone));
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor identity = shortcut_ ? shortcut_->forward(x) : x;
  return torch::relu(conv2_->forward(conv1_->forward(x)) + identity);
}

ResNetImpl::ResNetImpl(const ModelSpec& spec) : ZooNetworkImpl(spec) {
  torch::nn::Sequential body(ConvBN(spec.input.channels, spec.width, 3, 1, Activation::kReLU));
  int64_t channels = spec.width;
  for (int64_t stage = 0; stage < spec.stages; ++stage) {
    const int64_t out = stage_channels(spec, stage);
    for (int64_t block = 0; block < spec.depth; ++block) {
      const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
      body->push_back(BasicBlock(channels, out, stride));
      channels = out;
    }
  }
  set_backbone(body, channels);
}

}  // namespace amalgam

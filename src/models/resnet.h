// ResNet family: basic residual blocks (two 3x3 convs and a shortcut).
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include "models/layers.h"

namespace amalgam {

/// A basic residual block; a 1x1 projection shortcut when shape changes.
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride);
  /// x -> relu(conv-bn-relu-conv-bn(x) + shortcut(x))
  at::Tensor forward(const at::Tensor& x);

 private:
  ConvBN conv1_{nullptr};
  ConvBN conv2_{nullptr};
  ConvBN shortcut_{nullptr};
};
TORCH_MODULE(BasicBlock);

/// Stem 3x3 conv, then `stages` stages of `depth` basic blocks; stage k has width*2^k channels
/// and every stage after the first starts with stride 2.
class ResNetImpl : public ZooNetworkImpl {
 public:
  explicit ResNetImpl(const ModelSpec& spec);
};
TORCH_MODULE(ResNet);

}  // namespace amalgam

// MobileNetV2 family: inverted residuals with depthwise convolutions and linear bottlenecks.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include "models/layers.h"

namespace amalgam {

/// 1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection; residual when shapes
/// match.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expansion);
  /// The block's output; adds the input when stride is 1 and channels match.
  at::Tensor forward(const at::Tensor& x);
  /// Whether the input is added to the output.
  bool residual() const { return residual_; }

 private:
  torch::nn::Sequential body_{nullptr};
  bool residual_ = false;
};
TORCH_MODULE(InvertedResidual);

/// Stem 3x3 conv, `stages` stages of `depth` inverted residuals (width*2^k channels, stride 2
/// from the second stage on), then a 1x1 conv to 2x the last stage's channels: the feature map.
class MobileNetV2Impl : public ZooNetworkImpl {
 public:
  explicit MobileNetV2Impl(const ModelSpec& spec);
};
TORCH_MODULE(MobileNetV2);

}  // namespace amalgam

#include "models/mobilenetv2.h"

#include <torch/torch.h>

#include "core/error.h"

namespace amalgam {

InvertedResidualImpl::InvertedResidualImpl(int64_t in, int64_t out, int64_t stride,
                                           int64_t expansion)
    : residual_(stride == 1 && in == out) {
  const int64_t hidden = in * expansion;
  torch::nn::Sequential body;
  if (expansion != 1) body->push_back(ConvBN(in, hidden, 1, 1, Activation::kReLU6));
  body->push_back(ConvBN(hidden, hidden, 3, stride, Activation::kReLU6, hidden));
  body->push_back(ConvBN(hidden, out, 1, 1, Activation::kNone));
  body_ = register_module("body", body);
}

at::Tensor InvertedResidualImpl::forward(const at::Tensor& x) {
  at::Tensor y = body_->forward(x);
  return residual_ ? y + x : y;
}

MobileNetV2Impl::MobileNetV2Impl(const ModelSpec& spec) : ZooNetworkImpl(spec) {
  AMALGAM_CHECK(spec.expansion > 0, "model: mobilenetv2 --expansion must be > 0");
  torch::nn::Sequential body(ConvBN(spec.input.channels, spec.width, 3, 1, Activation::kReLU6));
  int64_t channels = spec.width;
  for (int64_t stage = 0; stage < spec.stages; ++stage) {
    const int64_t out = stage_channels(spec, stage);
    for (int64_t block = 0; block < spec.depth; ++block) {
      const int64_t stride = (stage > 0 && block == 0) ? 2 : 1;
      body->push_back(InvertedResidual(channels, out, stride, spec.expansion));
      channels = out;
    }
  }
  body->push_back(ConvBN(channels, 2 * channels, 1, 1, Activation::kReLU6));
  set_backbone(body, 2 * channels);
}

}  // namespace amalgam

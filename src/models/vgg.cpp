#include "models/vgg.h"

#include <torch/torch.h>

namespace amalgam {

VGGImpl::VGGImpl(const ModelSpec& spec) : ZooNetworkImpl(spec) {
  torch::nn::Sequential body;
  int64_t channels = spec.input.channels;
  for (int64_t stage = 0; stage < spec.stages; ++stage) {
    if (stage > 0)
      body->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).ceil_mode(true)));
    const int64_t out = stage_channels(spec, stage);
    for (int64_t layer = 0; layer < spec.depth; ++layer) {
      body->push_back(ConvBN(channels, out, 3, 1, Activation::kReLU));
      channels = out;
    }
  }
  set_backbone(body, channels);
}

}  // namespace amalgam

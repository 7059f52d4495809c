// VGG family: plain conv-BN-ReLU stacks with max-pooling between stages, no shortcuts.
#pragma once

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include "models/layers.h"

namespace amalgam {

/// `stages` stages of `depth` 3x3 conv-BN-ReLU layers with width*2^k channels; a 2x2 max-pool
/// precedes every stage after the first.
class VGGImpl : public ZooNetworkImpl {
 public:
  explicit VGGImpl(const ModelSpec& spec);
};
TORCH_MODULE(VGG);

}  // namespace amalgam

// Inference over many images: a network's outputs for a whole image tensor, batch by batch.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "models/network.h"

namespace amalgam {

/// Logits of `network` for every image, in order, computed in eval mode without autograd on the
/// network's device; returned on the CPU.
at::Tensor predict_logits(NetworkImpl& network, const at::Tensor& images, int64_t batch_size);

}  // namespace amalgam

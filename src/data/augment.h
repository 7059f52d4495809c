// Label-preserving augmentation of a batch: random crop with zero padding, horizontal flip.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace amalgam {

/// What augment_batch does.
struct AugmentOptions {
  int64_t crop_padding = 0;      ///< pad by this many pixels, then crop back at a random offset
  bool horizontal_flip = false;  ///< mirror each image with probability 1/2
  /// Whether any augmentation is on.
  bool enabled() const { return crop_padding > 0 || horizontal_flip; }
};

/// Augments every image of float `images` [B,C,H,W] independently; the draws are a pure function
/// of `seed`, so a run is reproducible. `first`: the images are positions first, first+1, ... of
/// the step's whole batch (a data-parallel rank's shard), and get the draws one process would
/// give those positions.
at::Tensor augment_batch(const at::Tensor& images, const AugmentOptions& options, uint64_t seed,
                         int64_t first = 0);

/// The augmentation seed of one training step.
uint64_t augment_seed(uint64_t run_seed, int64_t epoch, int64_t step);

}  // namespace amalgam

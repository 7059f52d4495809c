// Augmentation of a batch: random crop with zero padding and horizontal flip (label-preserving),
// and mixup between the batch's images (for imitation only: a mixed image has no label).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace amalgam {

/// What augment_batch does.
struct AugmentOptions {
  int64_t crop_padding = 0;      ///< pad by this many pixels, then crop back at a random offset
  bool horizontal_flip = false;  ///< mirror each image with probability 1/2
  /// Mixup: each image becomes lambda x + (1 - lambda) y with y another image of the batch and
  /// lambda ~ Beta(alpha, alpha), drawn per image (0 = off). A data-parallel rank mixes within
  /// its shard.
  double mixup_alpha = 0;
  /// Whether any augmentation is on.
  bool enabled() const { return crop_padding > 0 || horizontal_flip || mixup_alpha > 0; }
};

/// Augments every image of float `images` [B,C,H,W] (crops and flips independently, mixup in
/// pairs within `images`); the draws are a pure function of `seed`, so a run is reproducible.
/// `first`: the images are positions first, first+1, ... of the step's whole batch (a
/// data-parallel rank's shard), and get the crops and flips one process would give those
/// positions (mixup pairs stay within the shard).
at::Tensor augment_batch(const at::Tensor& images, const AugmentOptions& options, uint64_t seed,
                         int64_t first = 0);

/// The augmentation seed of one training step.
uint64_t augment_seed(uint64_t run_seed, int64_t epoch, int64_t step);

}  // namespace amalgam

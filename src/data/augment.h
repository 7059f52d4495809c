// Augmentation: RandomResizedCrop, drawn per image where the batch loader decodes it (the crop
// comes from the image as stored, before it is resized), and, on the batch, random crop with
// zero padding and horizontal flip (label-preserving) and mixup between the batch's images (for
// imitation only: a mixed image has no label).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace amalgam {

/// A crop box in an image's pixels.
struct CropBox {
  int64_t top = 0;     ///< first row
  int64_t left = 0;    ///< first column
  int64_t height = 0;  ///< rows
  int64_t width = 0;   ///< columns
};

/// Draws a crop box for an image of (height, width) pixels (RandomResizedCrop).
using CropDraw = std::function<CropBox(int64_t height, int64_t width)>;

/// What augment_batch and the batch loader do.
struct AugmentOptions {
  int64_t crop_padding = 0;      ///< pad by this many pixels, then crop back at a random offset
  bool horizontal_flip = false;  ///< mirror each image with probability 1/2
  /// Mixup: each image becomes lambda x + (1 - lambda) y with y another image of the batch and
  /// lambda ~ Beta(alpha, alpha), drawn per image (0 = off). A data-parallel rank mixes within
  /// its shard.
  double mixup_alpha = 0;
  /// RandomResizedCrop as torchvision's: each image cropped to a random box of a share in
  /// crop_scale of its area, aspect ratio log-uniform in crop_ratio, then resized to the input.
  bool random_resized_crop = false;
  std::vector<double> crop_scale{0.08, 1.0};         ///< area share range of the box
  std::vector<double> crop_ratio{3.0 / 4, 4.0 / 3};  ///< width / height range of the box
  /// Whether any augmentation is on.
  bool enabled() const {
    return crop_padding > 0 || horizontal_flip || mixup_alpha > 0 || random_resized_crop;
  }
};

/// torchvision's RandomResizedCrop.get_params for an image of height x width: up to 10 draws of
/// (area share, log-ratio), the first box that fits; else the centre crop of the largest box
/// whose ratio is clamped into the range. Draws from std::mt19937_64 seeded with `seed`.
CropBox draw_resized_crop(int64_t height, int64_t width, const AugmentOptions& options,
                          uint64_t seed);

/// The seed of the image at `position` of a step's whole batch, from the step's seed: the same
/// whatever the number of ranks and decode threads.
uint64_t image_seed(uint64_t step_seed, int64_t position);

/// The RandomResizedCrop draws of one batch of a step.
struct BatchCrops {
  const AugmentOptions* options = nullptr;  ///< null, or random_resized_crop off: no crop
  uint64_t step_seed = 0;                   ///< augment_seed of the step
  int64_t first = 0;  ///< position of the batch's first row in the step's whole batch
  /// Whether the images are cropped.
  bool on() const { return options != nullptr && options->random_resized_crop; }
  /// The draw of the batch's row `row` (empty when off).
  CropDraw draw(int64_t row) const;
  /// Whether the horizontal flips are made where the images are cropped (RandomResizedCrop and
  /// flip on, no padding), each row mirrored while it is converted to float: the batch then
  /// arrives flipped, and augment_batch is told so. Measured: the flip on the decoded batch cost
  /// a copy of the whole batch on the consumer's thread (bench/input_pipeline.sh, crop view).
  bool flips() const;
  /// Whether each of the batch's `count` rows is mirrored, as augment_batch draws it (all false
  /// unless flips()).
  std::vector<bool> draw_flips(int64_t count) const;
};

/// Crops uint8 `image` [C,H,W] to `box` and resizes it to height x width (antialiased bilinear).
at::Tensor resized_crop(const at::Tensor& image, const CropBox& box, int64_t height, int64_t width);

/// Augments every image of float `images` [B,C,H,W] (crops and flips independently, mixup in
/// pairs within `images`); the draws are a pure function of `seed`, so a run is reproducible.
/// `first`: the images are positions first, first+1, ... of the step's whole batch (a
/// data-parallel rank's shard), and get the crops and flips one process would give those
/// positions (mixup pairs stay within the shard). `flipped`: the images come flipped where they
/// were decoded (BatchCrops::flips); the flips are still drawn, so mixup's draws stay the same.
at::Tensor augment_batch(const at::Tensor& images, const AugmentOptions& options, uint64_t seed,
                         int64_t first = 0, bool flipped = false);

/// The augmentation seed of one training step.
uint64_t augment_seed(uint64_t run_seed, int64_t epoch, int64_t step);

}  // namespace amalgam

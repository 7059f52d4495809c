#include "data/augment.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace amalgam {

uint64_t augment_seed(uint64_t run_seed, int64_t epoch, int64_t step) {
  std::seed_seq seq{run_seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(step)};
  uint32_t words[2] = {};
  seq.generate(words, words + 2);
  return (uint64_t{words[0]} << 32) | words[1];
}

uint64_t image_seed(uint64_t step_seed, int64_t position) {
  // std::seed_seq keeps 32 bits of each value: the step's seed goes in as its two halves.
  std::seed_seq seq{step_seed & 0xffffffffu, step_seed >> 32, static_cast<uint64_t>(position)};
  uint32_t words[2] = {};
  seq.generate(words, words + 2);
  return (uint64_t{words[0]} << 32) | words[1];
}

CropBox draw_resized_crop(int64_t height, int64_t width, const AugmentOptions& options,
                          uint64_t seed) {
  std::mt19937_64 rng(seed);
  const double area = static_cast<double>(height * width);
  std::uniform_real_distribution<double> share(options.crop_scale[0], options.crop_scale[1]);
  std::uniform_real_distribution<double> log_ratio(std::log(options.crop_ratio[0]),
                                                   std::log(options.crop_ratio[1]));
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * share(rng);
    const double ratio = std::exp(log_ratio(rng));
    const auto w = static_cast<int64_t>(std::lround(std::sqrt(target * ratio)));
    const auto h = static_cast<int64_t>(std::lround(std::sqrt(target / ratio)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t top = std::uniform_int_distribution<int64_t>(0, height - h)(rng);
      const int64_t left = std::uniform_int_distribution<int64_t>(0, width - w)(rng);
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < options.crop_ratio[0])
    h = std::max<int64_t>(1, std::lround(static_cast<double>(w) / options.crop_ratio[0]));
  else if (in_ratio > options.crop_ratio[1])
    w = std::max<int64_t>(1, std::lround(static_cast<double>(h) * options.crop_ratio[1]));
  return {(height - h) / 2, (width - w) / 2, h, w};
}

CropDraw BatchCrops::draw(int64_t row) const {
  if (!on()) return {};
  const uint64_t seed = image_seed(step_seed, first + row);
  const AugmentOptions* crop = options;
  return [crop, seed](int64_t height, int64_t width) {
    return draw_resized_crop(height, width, *crop, seed);
  };
}

at::Tensor resized_crop(const at::Tensor& image, const CropBox& box, int64_t height,
                        int64_t width) {
  const at::Tensor crop = image.slice(1, box.top, box.top + box.height)
                              .slice(2, box.left, box.left + box.width)
                              .unsqueeze(0);
  return at::_upsample_bilinear2d_aa(crop, {height, width}, false)[0].contiguous();
}

namespace {

// lambda ~ Beta(alpha, alpha), from two Gamma(alpha, 1) draws.
double beta_draw(std::mt19937_64& rng, double alpha) {
  std::gamma_distribution<double> gamma(alpha, 1.0);
  const double a = gamma(rng), b = gamma(rng);
  return a + b > 0 ? a / (a + b) : 0.5;
}

// Each image mixed with the one `shift` places after it (cyclically), with its own lambda.
at::Tensor mix(const at::Tensor& images, double alpha, std::mt19937_64& rng) {
  const int64_t batch = images.size(0);
  if (batch < 2) return images;
  std::uniform_int_distribution<int64_t> pick(1, batch - 1);
  const int64_t shift = pick(rng);
  std::vector<float> lambdas(static_cast<size_t>(batch));
  for (auto& l : lambdas) l = static_cast<float>(beta_draw(rng, alpha));
  const at::Tensor lambda = torch::tensor(lambdas, images.options().dtype(torch::kFloat32))
                                .to(images.scalar_type())
                                .view({batch, 1, 1, 1});
  return lambda * images + (1 - lambda) * images.roll(-shift, 0);
}

// The per-image draws of augment_batch, in its order: for each position up to first + count,
// the pad offsets (top, left) when padding, then the flip; those before `first` are drawn and
// dropped, so a rank's shard gets the draws one process would give its positions.
struct PositionDraws {
  std::vector<std::pair<int64_t, int64_t>> offsets;  ///< (top, left); empty without padding
  std::vector<bool> flips;                           ///< empty without flipping
};

PositionDraws draw_positions(std::mt19937_64& rng, const AugmentOptions& options, int64_t first,
                             int64_t count) {
  const int64_t pad = options.crop_padding;
  std::uniform_int_distribution<int64_t> offset(0, 2 * pad);
  std::bernoulli_distribution flip(0.5);
  PositionDraws draws;
  for (int64_t i = 0; i < first + count; ++i) {
    std::pair<int64_t, int64_t> at{0, 0};
    if (pad > 0) {
      at.first = offset(rng);
      at.second = offset(rng);
    }
    const bool mirror = options.horizontal_flip && flip(rng);
    if (i < first) continue;
    if (pad > 0) draws.offsets.push_back(at);
    if (options.horizontal_flip) draws.flips.push_back(mirror);
  }
  return draws;
}

}  // namespace

bool BatchCrops::flips() const {
  return on() && options->horizontal_flip && options->crop_padding == 0;
}

std::vector<bool> BatchCrops::draw_flips(int64_t count) const {
  if (!flips()) return std::vector<bool>(static_cast<size_t>(count), false);
  std::mt19937_64 rng(step_seed);
  return draw_positions(rng, *options, first, count).flips;
}

at::Tensor augment_batch(const at::Tensor& images, const AugmentOptions& options, uint64_t seed,
                         int64_t first, bool flipped) {
  // RandomResizedCrop happened where the loader decoded the images.
  const bool flip = options.horizontal_flip && !flipped;
  if (options.crop_padding == 0 && !flip && options.mixup_alpha == 0) return images;
  std::mt19937_64 rng(seed);
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const int64_t pad = options.crop_padding;
  const at::Tensor padded =
      pad > 0 ? torch::constant_pad_nd(images, {pad, pad, pad, pad}, 0.0) : images;
  const PositionDraws draws = draw_positions(rng, options, first, batch);
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) {
    at::Tensor image = padded[i];
    if (pad > 0) {
      const auto [top, left] = draws.offsets[static_cast<size_t>(i)];
      image = image.slice(1, top, top + height).slice(2, left, left + width);
    }
    if (flip && draws.flips[static_cast<size_t>(i)]) image = image.flip({2});
    out.push_back(image);
  }
  const at::Tensor augmented = pad > 0 || flip ? torch::stack(out) : images;
  return options.mixup_alpha > 0 ? mix(augmented, options.mixup_alpha, rng) : augmented;
}

}  // namespace amalgam

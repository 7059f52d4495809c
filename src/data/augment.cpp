#include "data/augment.h"

#include <torch/torch.h>

#include <random>

namespace amalgam {

uint64_t augment_seed(uint64_t run_seed, int64_t epoch, int64_t step) {
  std::seed_seq seq{run_seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(step)};
  uint32_t words[2] = {};
  seq.generate(words, words + 2);
  return (uint64_t{words[0]} << 32) | words[1];
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

}  // namespace

at::Tensor augment_batch(const at::Tensor& images, const AugmentOptions& options, uint64_t seed,
                         int64_t first) {
  if (!options.enabled()) return images;
  std::mt19937_64 rng(seed);
  const int64_t batch = images.size(0), height = images.size(2), width = images.size(3);
  const int64_t pad = options.crop_padding;
  const at::Tensor padded =
      pad > 0 ? torch::constant_pad_nd(images, {pad, pad, pad, pad}, 0.0) : images;
  std::uniform_int_distribution<int64_t> offset(0, 2 * pad);
  std::bernoulli_distribution flip(0.5);
  for (int64_t i = 0; i < first; ++i) {  // the earlier positions' draws, in the same order
    if (pad > 0) offset(rng), offset(rng);
    if (options.horizontal_flip) flip(rng);
  }
  std::vector<at::Tensor> out;
  out.reserve(static_cast<size_t>(batch));
  for (int64_t i = 0; i < batch; ++i) {
    at::Tensor image = padded[i];
    if (pad > 0) {
      const int64_t top = offset(rng), left = offset(rng);
      image = image.slice(1, top, top + height).slice(2, left, left + width);
    }
    if (options.horizontal_flip && flip(rng)) image = image.flip({2});
    out.push_back(image);
  }
  const at::Tensor augmented = torch::stack(out);
  return options.mixup_alpha > 0 ? mix(augmented, options.mixup_alpha, rng) : augmented;
}

}  // namespace amalgam

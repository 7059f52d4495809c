// The loss functions of Common Feature Learning.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

namespace amalgam {

/// The default Gaussian kernel bandwidths of the multi-kernel MMD.
const std::vector<double>& default_mmd_sigmas();

/// Biased multi-kernel MMD² between samples x [N,...] and y [M,...]. Each sample is flattened and
/// L2-normalised; the kernel is sum over sigma of exp(-d²/(2 sigma²)); the estimate is
/// mean K(x,x) + mean K(y,y) - 2 mean K(x,y), computed from one Gram matrix and clamped at >= 0.
at::Tensor mmd_loss(const at::Tensor& x, const at::Tensor& y,
                    const std::vector<double>& sigmas = default_mmd_sigmas());

/// The same with per-sample weights `w` [N] (>= 0, not all 0) for paired samples x_n, y_n: the
/// three means become w-weighted means, so images a teacher is not responsible for count less.
at::Tensor weighted_mmd_loss(const at::Tensor& x, const at::Tensor& y, const at::Tensor& w,
                             const std::vector<double>& sigmas = default_mmd_sigmas());

/// Cross-entropy against soft targets: mean over the batch of -sum_k p_k log softmax(logits)_k.
/// Equals KL(p || softmax(logits)) plus the entropy of p.
at::Tensor soft_cross_entropy(const at::Tensor& logits, const at::Tensor& target_probs);

}  // namespace amalgam

#include "method/losses.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/precision.h"

namespace amalgam {

const std::vector<double>& default_mmd_sigmas() {
  static const std::vector<double> sigmas = {0.001, 0.01, 0.05, 0.1, 0.2, 1.0, 2.0};
  return sigmas;
}

namespace {

// Reduced-precision inputs (autocast outputs) widened to float32; float32 and float64 kept.
at::Tensor widened(const at::Tensor& x) {
  const bool reduced = x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kHalf;
  return reduced ? x.to(torch::kFloat32) : x;
}

// The summed Gaussian kernels between every pair of rows of [x; y] after flattening and L2
// normalisation: [N+M, N+M].
at::Tensor mmd_kernel(const at::Tensor& x, const at::Tensor& y, const std::vector<double>& sigmas) {
  AMALGAM_CHECK(!sigmas.empty(), "mmd: at least one kernel bandwidth is needed");
  AMALGAM_CHECK(x.size(0) > 0 && y.size(0) > 0, "mmd: both samples must be non-empty");
  const at::Tensor xs = torch::nn::functional::normalize(
      x.flatten(1), torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-12));
  const at::Tensor ys = torch::nn::functional::normalize(
      y.flatten(1), torch::nn::functional::NormalizeFuncOptions().dim(1).eps(1e-12));
  AMALGAM_CHECK(xs.size(1) == ys.size(1), "mmd: samples differ in dimension");
  const at::Tensor z = torch::cat({xs, ys}, 0);
  const at::Tensor gram = torch::mm(z, z.t());
  const at::Tensor sq = gram.diagonal();
  const at::Tensor d2 = (sq.unsqueeze(0) + sq.unsqueeze(1) - 2 * gram).clamp_min(0);
  at::Tensor kernel = torch::zeros_like(d2);
  for (double sigma : sigmas) {
    AMALGAM_CHECK(sigma > 0, "mmd: kernel bandwidths must be > 0");
    kernel = kernel + torch::exp(d2 * (-1.0 / (2.0 * sigma * sigma)));
  }
  return kernel;
}

}  // namespace

at::Tensor mmd_loss(const at::Tensor& x, const at::Tensor& y, const std::vector<double>& sigmas) {
  AutocastOff full_precision;  // the kernel sums differences of near-equal numbers
  const int64_t n = x.size(0);
  const at::Tensor kernel = mmd_kernel(widened(x), widened(y), sigmas);
  const at::Tensor kxx = kernel.slice(0, 0, n).slice(1, 0, n).mean();
  const at::Tensor kyy = kernel.slice(0, n).slice(1, n).mean();
  const at::Tensor kxy = kernel.slice(0, 0, n).slice(1, n).mean();
  return (kxx + kyy - 2 * kxy).clamp_min(0);
}

at::Tensor weighted_mmd_loss(const at::Tensor& x, const at::Tensor& y, const at::Tensor& w,
                             const std::vector<double>& sigmas) {
  const int64_t n = x.size(0);
  AMALGAM_CHECK(y.size(0) == n && w.numel() == n, "mmd: weighted samples must be paired");
  AutocastOff full_precision;
  const at::Tensor p = w.to(widened(x).dtype()) / w.sum().clamp_min(1e-12);
  const at::Tensor kernel = mmd_kernel(widened(x), widened(y), sigmas);
  const auto quadratic = [&](const at::Tensor& block) {
    return torch::dot(p, torch::mv(block, p));
  };
  const at::Tensor kxx = quadratic(kernel.slice(0, 0, n).slice(1, 0, n));
  const at::Tensor kyy = quadratic(kernel.slice(0, n).slice(1, n));
  const at::Tensor kxy = quadratic(kernel.slice(0, 0, n).slice(1, n));
  return (kxx + kyy - 2 * kxy).clamp_min(0);
}

at::Tensor soft_cross_entropy(const at::Tensor& logits, const at::Tensor& target_probs) {
  AutocastOff full_precision;
  return -(target_probs * torch::log_softmax(widened(logits), 1)).sum(1).mean();
}

}  // namespace amalgam

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "evaluation/paired_difference.h"
#include "method/losses.h"
#include "test_util.h"

using amalgam::mmd_loss;
using amalgam::soft_cross_entropy;
using amalgam::test::kFloat32Unit;
using amalgam::test::kFloat64Unit;

namespace {

// The MMD's terms kxx + kyy + 2 kxy: 4 means of kernels <= 1 per sigma.
double mmd_terms(const std::vector<double>& sigmas) {
  return 4.0 * static_cast<double>(sigmas.size());
}

}  // namespace

TEST(Mmd, IdenticalSamplesGiveZero) {
  torch::manual_seed(0);
  const auto x = torch::randn({32, 8, 3, 3});
  // x = y: the three kernel blocks hold the same values (a Gram entry's sum runs in one order
  // wherever it sits) and reduce alike: 0 exactly. No tolerance would do: at sigma 0.001 a d² of
  // 1e-7 (one rounding) is a kernel of 0.95.
  EXPECT_EQ(mmd_loss(x, x).item<double>(), 0.0);
}

TEST(Mmd, GrowsWithMeanShift) {
  torch::manual_seed(1);
  const auto x = torch::randn({64, 16});
  const auto noise = torch::randn({64, 16});
  auto shift = torch::zeros({16});
  shift[0] = 1.0;
  double previous = -1;
  for (double amount : {0.0, 0.5, 1.0, 2.0, 4.0}) {
    const double value = mmd_loss(x, noise + amount * shift).item<double>();
    EXPECT_GT(value, previous) << "shift " << amount;
    previous = value;
  }
  EXPECT_GT(previous, 0.1);
}

TEST(Mmd, IsSymmetric) {
  torch::manual_seed(2);
  const auto x = torch::randn({20, 10});
  const auto y = torch::randn({20, 10}) + 0.3;
  // Swapped, kxy averages the transposed block: 20 x 20 kernels in another order, x 2.
  EXPECT_NEAR(mmd_loss(x, y).item<double>(), mmd_loss(y, x).item<double>(),
              2 * 400 * kFloat32Unit * amalgam::default_mmd_sigmas().size());
}

TEST(Mmd, HasFiniteGradients) {
  torch::manual_seed(3);
  for (bool identical : {false, true}) {
    auto x = torch::randn({16, 4, 2, 2}, torch::requires_grad());
    auto y = identical ? x.detach().clone().requires_grad_(true)
                       : torch::randn({16, 4, 2, 2}, torch::requires_grad());
    mmd_loss(x, y).backward();
    EXPECT_TRUE(torch::isfinite(x.grad()).all().item<bool>());
    EXPECT_TRUE(torch::isfinite(y.grad()).all().item<bool>());
  }
}

TEST(Mmd, MatchesHandComputedValue) {
  // x = {e1, e2}, y = {e1, e1}: d²(e1,e2) = 2, every other pair 0.
  // With sigma in {1, 2}, k(d²=2) = a = exp(-1) + exp(-1/4), k(0) = 2:
  // mean Kxx = (2+a)/2, mean Kyy = 2, mean Kxy = (2+a)/2  =>  MMD² = 1 - a/2.
  const auto x = torch::tensor({1.0f, 0.0f, 0.0f, 1.0f}).view({2, 2});
  const auto y = torch::tensor({1.0f, 0.0f, 1.0f, 0.0f}).view({2, 2});
  const double a = std::exp(-1.0) + std::exp(-0.25);
  // Gram and d² exact; each kernel's exp within 1 ulp (2u) plus the sigmas' add (u), a 4-term
  // mean (3u), then kxx + kyy - 2 kxy (2u): <= 8u of kxx + kyy + 2 kxy.
  EXPECT_NEAR(mmd_loss(x, y, {1.0, 2.0}).item<double>(), 1.0 - a / 2.0,
              8 * kFloat32Unit * (3 * (2 + a) / 2 + 2));
  // Single sigma = 1: MMD² = (1 - exp(-1)) / 2; samples are L2-normalised, so scale is irrelevant.
  const double b = std::exp(-1.0);
  EXPECT_NEAR(mmd_loss(5 * x, 0.5 * y, {1.0}).item<double>(), (1.0 - b) / 2.0,
              8 * kFloat32Unit * (3 * (1 + b) / 2 + 1));
}

TEST(Mmd, TinyBandwidthsAddNoGradient) {
  // sigma = 0.001 kernels are ~0 off the diagonal: they add a constant and no gradient.
  torch::manual_seed(4);
  auto x = torch::randn({8, 6}, torch::requires_grad());
  const auto y = torch::randn({8, 6});
  mmd_loss(x, y, {0.001}).backward();
  // Off the diagonal the kernels underflow to 0; on it d² = 2g - 2g = 0 exactly, so its gradient
  // a + a - 2a is 0 in any order: exact, as is the value (8 + 8 ones) / 64.
  EXPECT_EQ(x.grad().abs().max().item<double>(), 0.0);
  EXPECT_EQ(mmd_loss(x, y, {0.001}).item<double>(), 2.0 / 8.0);
}

TEST(SoftCrossEntropy, EqualsKlPlusEntropy) {
  torch::manual_seed(5);
  const auto logits = torch::randn({10, 7}, torch::kFloat64);
  const auto p = torch::softmax(torch::randn({10, 7}, torch::kFloat64) * 2, 1);
  const auto log_q = torch::log_softmax(logits, 1);
  const double kl = (p * (p.log() - log_q)).sum(1).mean().item<double>();
  const double entropy = -(p * p.log()).sum(1).mean().item<double>();
  // Float64 on both sides: 7-class sums, 10-row means and log_softmax's few roundings (< 32 in
  // all) of terms |p log p| + |p log q| that add up to entropy + cross-entropy, each way.
  const double bound = 2 * 32 * kFloat64Unit * (kl + 2 * entropy);
  EXPECT_NEAR(soft_cross_entropy(logits, p).item<double>(), kl + entropy, bound);
  // Minimised (= entropy) exactly when the student reproduces the targets.
  EXPECT_NEAR(soft_cross_entropy(p.log(), p).item<double>(), entropy, bound);
}

TEST(WeightedMmd, UniformWeightsGiveTheUnweightedValue) {
  torch::manual_seed(5);
  const auto x = torch::randn({24, 6});
  const auto y = torch::randn({24, 6}) + 0.5;
  const auto sigmas = amalgam::default_mmd_sigmas();
  // The same kernels averaged over 24 x 24 (576u) and as p.K.p: p = 0.3 / a 24-term sum (25u,
  // twice), a 24-term mv and dot (24u each): <= 674u of the MMD's terms.
  EXPECT_NEAR(amalgam::weighted_mmd_loss(x, y, torch::full({24}, 0.3), sigmas).item<double>(),
              mmd_loss(x, y, sigmas).item<double>(), 674 * kFloat32Unit * mmd_terms(sigmas));
}

TEST(WeightedMmd, ZeroWeightPairsAreIgnored) {
  // Pairs of weight 0 (images outside a teacher's expertise) may differ arbitrarily.
  torch::manual_seed(6);
  const auto x = torch::randn({16, 6});
  auto y = x.clone();
  y.slice(0, 8) += 5.0;
  auto w = torch::ones({16});
  w.slice(0, 8).zero_();
  const auto sigmas = amalgam::default_mmd_sigmas();
  // As for identical samples: the weighted blocks hold the same values and reduce alike, and the
  // weight-0 rows add exact zeros: 0 exactly.
  EXPECT_EQ(amalgam::weighted_mmd_loss(x, y, w, sigmas).item<double>(), 0.0);
  EXPECT_GT(mmd_loss(x, y, sigmas).item<double>(), 0.01);
}

// reproduce's paired comparison against KD: values checked against scipy.stats (ttest_rel,
// t.ppf) by hand.
TEST(PairedDifference, StudentTIntervalAndPValue) {
  // scipy's t.ppf(0.975, 4) to 7 digits (+-5e-7), where the t density is < 0.03.
  const double t = 2.776445, t_digits = 5e-7;
  EXPECT_NEAR(amalgam::student_t_cdf(t, 4), 0.975, t_digits * 0.03);
  // Cauchy: 1/4 exactly, here through lgamma, exp and a continued fraction in double.
  EXPECT_NEAR(amalgam::student_t_cdf(-1.0, 1), 0.25, 1e-9);
  EXPECT_EQ(amalgam::student_t_cdf(0.0, 7), 0.5);  // I_1 = 1 exactly
  const auto d = amalgam::paired_difference({1, 2, 3, 4, 5, NAN}, {0, 0, 0, 0, 0, 1});
  EXPECT_EQ(d.pairs, 5);
  EXPECT_DOUBLE_EQ(d.mean, 3.0);
  // The interval uses the bisected quantile: off the 7-digit t by its rounding x the s.e.
  EXPECT_NEAR(d.lo, 3.0 - t * std::sqrt(2.5 / 5), t_digits * std::sqrt(2.5 / 5));
  EXPECT_NEAR(d.hi, 3.0 + t * std::sqrt(2.5 / 5), t_digits * std::sqrt(2.5 / 5));
  EXPECT_NEAR(d.p, 0.013236, 5e-7);  // t = 4.2426, 4 degrees of freedom; scipy's p to 6 places
  const auto same = amalgam::paired_difference({0.5, 0.7}, {0.5, 0.7});
  EXPECT_EQ(same.mean, 0.0);
  EXPECT_EQ(same.p, 1.0);
  EXPECT_TRUE(std::isnan(amalgam::paired_difference({1.0}, {0.0}).p));
}

#include "evaluation/paired_difference.h"

#include <cmath>
#include <limits>

namespace amalgam {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Continued fraction of the regularised incomplete beta function (modified Lentz).
double beta_fraction(double a, double b, double x) {
  const double tiny = 1e-300;
  double c = 1, d = 1 - (a + b) * x / (a + 1);
  if (std::fabs(d) < tiny) d = tiny;
  d = 1 / d;
  double h = d;
  for (int m = 1; m <= 300; ++m) {
    const double m2 = 2.0 * m;
    double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    d = std::fabs(d) < tiny ? 1 / tiny : 1 / d;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    h *= d * c;
    aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    d = std::fabs(d) < tiny ? 1 / tiny : 1 / d;
    c = 1 + aa / c;
    if (std::fabs(c) < tiny) c = tiny;
    const double step = d * c;
    h *= step;
    if (std::fabs(step - 1) < 1e-15) break;
  }
  return h;
}

// I_x(a, b), the regularised incomplete beta function.
double incomplete_beta(double a, double b, double x) {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const double front = std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) +
                                a * std::log(x) + b * std::log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return front * beta_fraction(a, b, x) / a;
  return 1 - front * beta_fraction(b, a, 1 - x) / b;
}

// The t with P(T <= t) = q, by bisection (the CDF is monotone).
double student_t_quantile(double q, double dof) {
  double lo = 0, hi = 1e3;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    (student_t_cdf(mid, dof) < q ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

double student_t_cdf(double t, double dof) {
  const double tail = 0.5 * incomplete_beta(0.5 * dof, 0.5, dof / (dof + t * t));
  return t >= 0 ? 1 - tail : tail;
}

PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> d;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (!std::isnan(a[i]) && !std::isnan(b[i])) d.push_back(a[i] - b[i]);
  PairedDifference out;
  out.pairs = static_cast<int64_t>(d.size());
  if (d.empty()) return {0, kNaN, kNaN, kNaN, kNaN};
  for (double x : d) out.mean += x;
  out.mean /= static_cast<double>(d.size());
  if (d.size() < 2) {
    out.lo = out.hi = out.p = kNaN;
    return out;
  }
  double var = 0;
  for (double x : d) var += (x - out.mean) * (x - out.mean);
  const double dof = static_cast<double>(d.size() - 1);
  const double se = std::sqrt(var / dof / static_cast<double>(d.size()));
  const double half = student_t_quantile(0.975, dof) * se;
  out.lo = out.mean - half;
  out.hi = out.mean + half;
  if (se == 0) {
    out.p = out.mean == 0 ? 1.0 : 0.0;
  } else {
    out.p = 2 * (1 - student_t_cdf(std::fabs(out.mean) / se, dof));
  }
  return out;
}

nlohmann::json to_json_value(const PairedDifference& d) {
  const auto value = [](double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); };
  return {{"mean", value(d.mean)},
          {"ci95", {value(d.lo), value(d.hi)}},
          {"p", value(d.p)},
          {"pairs", d.pairs}};
}

}  // namespace amalgam

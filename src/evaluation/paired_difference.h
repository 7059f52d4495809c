// Paired comparison of two ways of training, run with the same seeds (so the same initialisation
// and data order): the mean difference, its 95% interval and a two-sided p-value (Student's t).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace amalgam {

/// a - b over the pairs both measured.
struct PairedDifference {
  int64_t pairs = 0;  ///< pairs with both values (NaN entries are left out)
  double mean = 0;    ///< mean of a[i] - b[i]
  double lo = 0;      ///< 95% interval of the mean difference (t with pairs - 1 degrees of freedom)
  double hi = 0;      ///< upper end (lo = hi = NaN with fewer than 2 pairs)
  double p = 0;       ///< two-sided p-value of "no difference" (NaN with fewer than 2 pairs)
};

/// The paired difference a[i] - b[i]; values in any unit (the result is in the same unit).
PairedDifference paired_difference(const std::vector<double>& a, const std::vector<double>& b);

/// {"mean": m, "ci95": [lo, hi], "p": p, "pairs": n}, NaN as null.
nlohmann::json to_json_value(const PairedDifference& d);

/// P(T <= t) for Student's t with `dof` degrees of freedom.
double student_t_cdf(double t, double dof);

}  // namespace amalgam

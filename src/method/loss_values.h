// Named loss terms: what an objective returns for a step (tensors), and the numbers that the
// step, epoch means, step records, metrics.jsonl, progress lines and the report are made of.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <utility>
#include <vector>

namespace amalgam {

/// Loss terms as numbers, by name: "total" first, then an objective's own terms in its order.
class LossValues {
 public:
  /// Appends term `name`, or adds `value` to it when it is already there.
  void add(const std::string& name, double value);
  /// The value of term `name` (0 when the objective has no such term).
  double get(const std::string& name) const;
  /// Adds `weight` x every term of `other` (epoch sums weighted by images).
  void accumulate(const LossValues& other, double weight);
  /// Every term divided by `count` (epoch sums to means).
  LossValues mean_over(double count) const;
  /// The terms in order.
  const std::vector<std::pair<std::string, double>>& terms() const { return terms_; }
  /// Every value in order (for collectives).
  std::vector<double> numbers() const;
  /// Replaces every value, in order (after a collective).
  void set_numbers(const std::vector<double>& numbers);
  /// "kd 0.1234 mmd 0.0567": every term but total, for progress lines.
  std::string parts_text() const;
  /// Whether there are no terms.
  bool empty() const { return terms_.empty(); }

 private:
  std::vector<std::pair<std::string, double>> terms_;
};

/// {"total": ..., "kd": ...}. Reading puts "total" first, then the others in key order.
void to_json(nlohmann::json& j, const LossValues& values);
void from_json(const nlohmann::json& j, LossValues& values);

/// The terms of one step as scalar tensors; `total` is what is minimised.
struct LossTerms {
  at::Tensor total;                                       ///< what is minimised
  std::vector<std::pair<std::string, at::Tensor>> parts;  ///< named terms, in the objective's order

  /// Appends a named term.
  void add(std::string name, at::Tensor value);
  /// Term `name` (an undefined tensor when absent).
  at::Tensor part(const std::string& name) const;
  /// Total, then the parts, read as numbers.
  LossValues values() const;
};

}  // namespace amalgam

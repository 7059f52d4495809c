#include "method/loss_values.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdio>

#include "core/error.h"

namespace amalgam {

void LossValues::add(const std::string& name, double value) {
  for (auto& [term, sum] : terms_) {
    if (term == name) {
      sum += value;
      return;
    }
  }
  terms_.emplace_back(name, value);
}

double LossValues::get(const std::string& name) const {
  for (const auto& [term, value] : terms_)
    if (term == name) return value;
  return 0.0;
}

void LossValues::accumulate(const LossValues& other, double weight) {
  for (const auto& [term, value] : other.terms_) add(term, value * weight);
}

LossValues LossValues::mean_over(double count) const {
  LossValues out = *this;
  for (auto& term : out.terms_) term.second /= count;
  return out;
}

std::vector<double> LossValues::numbers() const {
  std::vector<double> out;
  for (const auto& term : terms_) out.push_back(term.second);
  return out;
}

void LossValues::set_numbers(const std::vector<double>& numbers) {
  AMALGAM_CHECK(numbers.size() == terms_.size(), "loss values: term count mismatch");
  for (size_t i = 0; i < numbers.size(); ++i) terms_[i].second = numbers[i];
}

std::string LossValues::parts_text() const {
  std::string text;
  for (const auto& [term, value] : terms_) {
    if (term == "total") continue;
    char number[32];
    std::snprintf(number, sizeof number, "%.4f", value);
    text += (text.empty() ? "" : " ") + term + " " + number;
  }
  return text;
}

void to_json(nlohmann::json& j, const LossValues& values) {
  j = nlohmann::json::object();
  for (const auto& [term, value] : values.terms()) j[term] = value;
}

void from_json(const nlohmann::json& j, LossValues& values) {
  values = LossValues();
  if (j.contains("total")) values.add("total", j.at("total").get<double>());
  for (const auto& [term, value] : j.items())
    if (term != "total") values.add(term, value.get<double>());
}

void LossTerms::add(std::string name, at::Tensor value) {
  parts.emplace_back(std::move(name), std::move(value));
}

at::Tensor LossTerms::part(const std::string& name) const {
  for (const auto& [term, value] : parts)
    if (term == name) return value;
  return {};
}

LossValues LossTerms::values() const {
  LossValues out;
  out.add("total", total.item<double>());
  for (const auto& [term, value] : parts) out.add(term, value.item<double>());
  return out;
}

}  // namespace amalgam

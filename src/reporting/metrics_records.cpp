#include "reporting/metrics_records.h"

#include <cmath>

#include "core/json_file.h"
#include "core/names.h"

namespace amalgam {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// Scores under `key` (absent: none): finite numbers, in [0, 1] when they are `accuracies`.
std::optional<Scores> read_scores(const JsonFields& fields, const std::string& key,
                                  bool accuracies) {
  if (!fields.has(key) || fields.at(key).is_null()) return std::nullopt;
  const nlohmann::json& value = fields.at(key);
  if (!value.is_object()) throw fields.error(key, "must be an object, got " + json_kind(value));
  Scores scores;
  for (const auto& [name, number] : value.items()) {
    const bool ok = number.is_number() && std::isfinite(number.get<double>()) &&
                    (!accuracies || (number.get<double>() >= 0 && number.get<double>() <= 1));
    if (!ok)
      throw fields.error(key, "\"" + name + "\" must be " +
                                  (accuracies ? "an accuracy in [0, 1]" : "a finite number"));
    scores[name] = number.get<double>();
  }
  return scores;
}

int64_t count(const JsonFields& fields, const std::string& key) {
  const auto value = fields.get<int64_t>(key);
  if (value < 0) throw fields.error(key, "must not be negative");
  return value;
}

double non_negative(const JsonFields& fields, const std::string& key) {
  const auto value = fields.get<double>(key, 0.0);
  if (value < 0) throw fields.error(key, "must not be negative");
  return value;
}

StepMetrics read_step(const JsonFields& fields) {
  fields.only({"type", "epoch", "step", "global_step", "loss", "lrs", "images_per_second"});
  StepMetrics r;
  r.epoch = count(fields, "epoch");
  r.step = count(fields, "step");
  r.global_step = count(fields, "global_step");
  r.loss = read_scores(fields, "loss", false).value_or(Scores{});
  r.lrs = fields.get<std::vector<double>>("lrs", {});
  for (double lr : r.lrs)
    if (!std::isfinite(lr)) throw fields.error("lrs", "holds a value that is not finite");
  r.images_per_second = non_negative(fields, "images_per_second");
  return r;
}

EpochMetrics read_epoch(const JsonFields& fields) {
  fields.only({"type", "epoch", "loss", "seconds", "images_per_second", "val"});
  EpochMetrics r;
  r.epoch = count(fields, "epoch");
  r.loss = read_scores(fields, "loss", false).value_or(Scores{});
  r.seconds = non_negative(fields, "seconds");
  r.images_per_second = non_negative(fields, "images_per_second");
  r.val = read_scores(fields, "val", true);
  return r;
}

SummaryMetrics read_summary(const JsonFields& fields) {
  fields.only({"type", "student", "student_params", "seconds", "student_val", "routing_rule",
               "routing_agreement"});
  SummaryMetrics r;
  r.student = fields.get<std::string>("student", "");
  r.student_params = fields.get<int64_t>("student_params", 0);
  if (r.student_params < 0) throw fields.error("student_params", "must not be negative");
  r.seconds = non_negative(fields, "seconds");
  r.student_val = read_scores(fields, "student_val", true);
  r.routing_rule = fields.get<std::string>("routing_rule", "");
  if (fields.has("routing_agreement")) {
    const auto agreement = fields.get<double>("routing_agreement");
    if (!(agreement >= -1 && agreement <= 1))
      throw fields.error("routing_agreement", "must be a correlation in [-1, 1]");
    r.routing_agreement = agreement;
  }
  return r;
}

}  // namespace

nlohmann::json metrics_json(const MetricsRecord& record) {
  return std::visit(Overloaded{[](const StepMetrics& r) -> nlohmann::json {
                                 return {{"type", "step"},
                                         {"epoch", r.epoch},
                                         {"step", r.step},
                                         {"global_step", r.global_step},
                                         {"loss", r.loss},
                                         {"lrs", r.lrs},
                                         {"images_per_second", r.images_per_second}};
                               },
                               [](const EpochMetrics& r) -> nlohmann::json {
                                 nlohmann::json j = {{"type", "epoch"},
                                                     {"epoch", r.epoch},
                                                     {"loss", r.loss},
                                                     {"seconds", r.seconds},
                                                     {"images_per_second", r.images_per_second}};
                                 if (r.val) j["val"] = *r.val;
                                 return j;
                               },
                               [](const TeachersMetrics& r) -> nlohmann::json {
                                 return {{"type", "teachers"}, {"val", r.val}};
                               },
                               [](const SummaryMetrics& r) -> nlohmann::json {
                                 nlohmann::json j = {
                                     {"type", "summary"},
                                     {"student", r.student},
                                     {"student_params", r.student_params},
                                     {"seconds", r.seconds},
                                     {"student_val", r.student_val ? nlohmann::json(*r.student_val)
                                                                   : nlohmann::json()}};
                                 if (!r.routing_rule.empty()) j["routing_rule"] = r.routing_rule;
                                 if (r.routing_agreement)
                                   j["routing_agreement"] = *r.routing_agreement;
                                 return j;
                               }},
                    record);
}

MetricsRecord read_metrics_record(const nlohmann::json& j, const std::string& where) {
  const JsonFields fields(j, where);
  const std::string type = fields.get<std::string>("type");
  if (type == "step") return read_step(fields);
  if (type == "epoch") return read_epoch(fields);
  if (type == "summary") return read_summary(fields);
  if (type == "teachers") {
    fields.only({"type", "val"});
    return TeachersMetrics{read_scores(fields, "val", true).value_or(Scores{})};
  }
  throw fields.error("type", "is '" + type + "', not a metrics record type" +
                                 did_you_mean(type, {"step", "epoch", "teachers", "summary"}));
}

}  // namespace amalgam

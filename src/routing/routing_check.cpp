#include "routing/routing_check.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>

#include "core/log.h"
#include "models/network.h"
#include "routing/teacher_scores.h"

namespace amalgam {
namespace {

// Why the check cannot run for this objective and data ("" when it can).
std::string not_checkable(const std::vector<Teacher>& teachers, const LabeledImages& val,
                          const std::optional<RoutingOptions>& routing) {
  if (!routing || routing->rule == RoutingRule::kConcatenated) return "the method does not route";
  if (!routing->check) return "turned off (--no-routing-check)";
  if (teachers.size() < 2) return "one teacher";
  const std::string instead = "; the teachers' agreement on the transfer images decides";
  if (val.size() == 0) return "no labeled validation images (give --val-data)" + instead;
  std::vector<TaskSpec> tasks;
  for (const auto& t : teachers) tasks.push_back(t.task);
  const at::Tensor truth = true_tasks(val.labels, tasks);
  for (size_t i = 0; i < tasks.size(); ++i)
    if (truth.eq(static_cast<int64_t>(i)).sum().item<int64_t>() < kRoutingCheckMinImages)
      return "fewer than " + std::to_string(kRoutingCheckMinImages) +
             " validation images of task " + tasks[i].name + instead;
  return "";
}

// Fits check.likelihood on the validation logits and hands it to `o`, so the routing measured is
// the one training would use (shares estimated by EM).
void fit_likelihood(const std::vector<at::Tensor>& logits, const at::Tensor& labels,
                    const std::vector<TaskSpec>& tasks, RoutingCheck& check, RoutingOptions& o) {
  const at::Tensor truth = true_tasks(labels, tasks);
  check.val_shares = task_shares(truth, static_cast<int64_t>(tasks.size()));
  check.likelihood.temperatures = energy_temperatures(logits, o.energy_temperature);
  fit_score_calibration(
      routing_scores(logits, o.score, o.energy_temperature, check.likelihood.temperatures), truth,
      check.likelihood);
  // Likelihoods, not posteriors: the validation images' own task shares are taken out, so the
  // transfer set's shares can differ from them (a quarter digits in the cross-domain set-up).
  for (size_t i = 0; i < tasks.size(); ++i)
    check.likelihood.offsets[i] -= std::log(check.val_shares[i]);
  o.likelihood = check.likelihood;
}

}  // namespace

RoutingCheck check_routing(const std::vector<Teacher>& teachers, const LabeledImages& val,
                           const std::optional<RoutingOptions>& routing) {
  RoutingCheck check;
  check.reason = not_checkable(teachers, val, routing);
  if (!check.reason.empty()) return check;
  const TeacherLogits all = teacher_logits_on(teachers, val, kInferenceBatch);
  check.checked = true;
  check.images = all.images.size();
  RoutingOptions o = *routing;
  if (o.estimate_prior && o.prior.empty())
    fit_likelihood(all.logits, all.images.labels, all.tasks, check, o);
  const TeacherRoutingScores scores =
      teacher_routing_scores(all.logits, all.images.labels, all.tasks, o);
  check.calibrated = scores.calibrated_routing;
  check.concatenated = scores.concatenated_routing;
  // A routing no better than what the concatenated logits already imply teaches the student's
  // gate nothing true: measured on tv-vit (test: calibrated 50.9% vs concatenated 57.7%) the gate
  // learnt from it routed 33% right and the union fell from KD's 46.0% to 28.1%.
  check.fall_back = check.calibrated <= check.concatenated;
  return check;
}

void apply_routing_check(const RoutingCheck& check, std::optional<RoutingOptions>& routing) {
  if (!routing) return;
  if (check.checked) routing->label_free_check = false;  // labels decided
  if (check.fall_back) {
    routing->rule = RoutingRule::kConcatenated;
    return;
  }
  if (routing->prior.empty() && check.likelihood.fitted()) routing->likelihood = check.likelihood;
}

RoutingCheck settle_routing(const std::vector<Teacher>& teachers, const LabeledImages& val,
                            std::optional<RoutingOptions>& routing, const std::string& who) {
  const RoutingCheck check = check_routing(teachers, val, routing);
  apply_routing_check(check, routing);
  log_info(who + ": " + describe(check));
  return check;
}

std::string describe(const RoutingCheck& check) {
  if (!check.checked) return "routing not checked on validation: " + check.reason;
  char line[256];
  std::snprintf(
      line, sizeof line,
      "routing checked on %lld validation images: the teachers' calibrated scores route "
      "%.1f%% to the right task, their concatenated logits %.1f%% -> %s",
      static_cast<long long>(check.images), 100.0 * check.calibrated, 100.0 * check.concatenated,
      check.fall_back ? "no evidence: the union follows the concatenated logits (plain KD's)"
                      : "routing kept");
  return line;
}

void to_json(nlohmann::json& j, const RoutingCheck& c) {
  j = {{"checked", c.checked}, {"fall_back", c.fall_back}};
  if (!c.checked) {
    j["reason"] = c.reason;
    return;
  }
  j["images"] = c.images;
  j["calibrated_routing"] = c.calibrated;
  j["concatenated_routing"] = c.concatenated;
  if (!c.likelihood.fitted()) return;
  j["val_shares"] = c.val_shares;
  j["likelihood"] = c.likelihood;
}

}  // namespace amalgam

// The routing's evidence checked on labeled validation images before training: where the
// teachers' calibrated scores route images to their task no better than the teachers' raw
// concatenated logits do, the student is not taught that routing: its union follows the
// concatenated logits as plain KD's does (rule concatenated). With --estimate-task-shares the same
// images fit the teachers' scores as log-likelihoods of the tasks, so the task shares of the
// transfer set are estimated rather than assumed from class counts.
// Validation labels choose these settings; none reaches training.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "routing/routing.h"
#include "teachers/teacher.h"

namespace amalgam {

/// What the check measured and decided.
struct RoutingCheck {
  bool checked = false;     ///< false: not run (see `reason`); the rule is kept
  std::string reason;       ///< why it was not run ("" when it was)
  int64_t images = 0;       ///< validation images of the teachers' tasks
  double calibrated = 0;    ///< share the calibrated scores route to the image's task
  double concatenated = 0;  ///< share the concatenated logits route to the image's task
  bool fall_back = false;   ///< the rule was set to concatenated
  /// The teachers' scores as log-likelihoods of their tasks, fitted on the validation images
  /// with --estimate-task-shares (RoutingOptions::likelihood); otherwise not fitted.
  ScoreCalibration likelihood;
  std::vector<double> val_shares;  ///< the validation images' task shares
};

/// Fewest validation images of each task the check needs.
constexpr int64_t kRoutingCheckMinImages = 20;

/// Runs the check for `routing` (the routed targets' options; absent for concatenated targets,
/// which have nothing to check) on `val`: it falls back where the calibrated scores route no
/// better than the concatenated logits.
RoutingCheck check_routing(const std::vector<Teacher>& teachers, const LabeledImages& val,
                           const std::optional<RoutingOptions>& routing);

/// Sets routing->rule to concatenated where `check` fell back; otherwise hands its fitted
/// likelihood (--estimate-task-shares) to the routing, unless the user gave a --task-prior.
void apply_routing_check(const RoutingCheck& check, std::optional<RoutingOptions>& routing);

/// One line for the log: what was measured and what was decided.
std::string describe(const RoutingCheck& check);

/// The routing's one step before training, for every caller (amalgamate, demo, reproduce): the
/// check on `val`, its decision applied to `routing`, and the line describing it logged after
/// `who`. Returns what was measured, for config.json's "routing_check".
RoutingCheck settle_routing(const std::vector<Teacher>& teachers, const LabeledImages& val,
                            std::optional<RoutingOptions>& routing, const std::string& who);

void to_json(nlohmann::json& j, const RoutingCheck& check);

}  // namespace amalgam

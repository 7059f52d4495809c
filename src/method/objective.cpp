#include "method/objective.h"

#include <torch/torch.h>

#include "core/error.h"
#include "method/losses.h"

namespace amalgam {

// Each method's objective lives in its own file; adding a method adds its file, its maker's
// declaration here and its row in methods().
Objective make_kd_objective(const ObjectiveSetup& setup);
Objective make_fitnet_objective(const ObjectiveSetup& setup);
Objective make_cfl_objective(const ObjectiveSetup& setup);
Objective make_cfl_paper_objective(const ObjectiveSetup& setup);

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> table = {
      {"cfl",
       "expertise-aware common feature learning: each teacher imitated on the images it is "
       "responsible for, the student's head learns which task an image belongs to, plus the "
       "common-space terms (off by default: --lambda-cf 0, measured in docs/results.md)",
       &make_cfl_objective, 0.0},
      {"cfl-paper",
       "common feature learning as published: soft targets from the concatenated teacher logits "
       "+ MMD and reconstruction in a common space",
       &make_cfl_paper_objective, 1.0},
      {"kd", "knowledge distillation: soft targets only", &make_kd_objective, 0.0},
      {"fitnet", "FitNet hints (student features regressed onto each teacher's) + soft targets",
       &make_fitnet_objective, 1.0},
  };
  return table;
}

const MethodInfo& find_method(const std::string& name) {
  for (const auto& method : methods())
    if (name == method.name) return method;
  throw Error("--method: expected one of " + method_names() + ", got '" + name + "'");
}

std::string method_names() {
  std::string names;
  for (const auto& method : methods())
    names += (names.empty() ? "" : ", ") + std::string(method.name);
  return names;
}

void validate(const ObjectiveConfig& o) {
  find_method(o.method);
  AMALGAM_CHECK(o.temperature > 0, "--temperature: must be > 0");
  AMALGAM_CHECK(o.lambda_kd >= 0, "--lambda-kd: must be >= 0");
  AMALGAM_CHECK(o.lambda_cf >= 0 || o.lambda_cf == kMethodDefault, "--lambda-cf: must be >= 0");
  AMALGAM_CHECK(o.beta >= 0, "--beta: must be >= 0");
  for (double s : o.sigmas) AMALGAM_CHECK(s > 0, "--mmd-sigmas: every bandwidth must be > 0");
  AMALGAM_CHECK(o.common_channels > 0, "--common-channels: must be > 0");
  AMALGAM_CHECK(o.extractor_blocks > 0, "--extractor-blocks: must be > 0");
  AMALGAM_CHECK(o.feature_warmup >= 0 && o.feature_warmup <= 1,
                "--feature-warmup: must be in [0, 1]");
  validate(o.routing);
}

ObjectiveConfig resolve_defaults(ObjectiveConfig config) {
  if (config.lambda_cf == kMethodDefault)
    config.lambda_cf = find_method(config.method).default_lambda_cf;
  return config;
}

Objective make_objective(const ObjectiveSetup& setup) {
  validate(setup.config);
  ObjectiveSetup resolved = setup;
  resolved.config = resolve_defaults(setup.config);
  return find_method(resolved.config.method).make(resolved);
}

at::Tensor soft_target_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                            double temperature) {
  std::vector<at::Tensor> logits;
  for (const auto& t : teachers) logits.push_back(t.logits);
  const at::Tensor targets = torch::softmax(torch::cat(logits, 1) / temperature, 1);
  return temperature * temperature * soft_cross_entropy(student.logits / temperature, targets);
}

}  // namespace amalgam

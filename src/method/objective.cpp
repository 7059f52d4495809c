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

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> table = {
      {"cfl", "common feature learning: soft targets + MMD and reconstruction in a common space",
       &make_cfl_objective},
      {"kd", "knowledge distillation: soft targets only", &make_kd_objective},
      {"fitnet", "FitNet hints (student features regressed onto each teacher's) + soft targets",
       &make_fitnet_objective},
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
  AMALGAM_CHECK(o.lambda_cf >= 0, "--lambda-cf: must be >= 0");
  AMALGAM_CHECK(o.beta >= 0, "--beta: must be >= 0");
  for (double s : o.sigmas) AMALGAM_CHECK(s > 0, "--mmd-sigmas: every bandwidth must be > 0");
  AMALGAM_CHECK(o.common_channels > 0, "--common-channels: must be > 0");
  AMALGAM_CHECK(o.extractor_blocks > 0, "--extractor-blocks: must be > 0");
  AMALGAM_CHECK(o.feature_warmup >= 0 && o.feature_warmup <= 1,
                "--feature-warmup: must be in [0, 1]");
  validate(o.routing);
}

Objective make_objective(const ObjectiveSetup& setup) {
  validate(setup.config);
  return find_method(setup.config.method).make(setup);
}

at::Tensor soft_target_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                            double temperature) {
  std::vector<at::Tensor> logits;
  for (const auto& t : teachers) logits.push_back(t.logits);
  const at::Tensor targets = torch::softmax(torch::cat(logits, 1) / temperature, 1);
  return temperature * temperature * soft_cross_entropy(student.logits / temperature, targets);
}

}  // namespace amalgam

#include "method/cfl_objective.h"

#include <torch/torch.h>

#include "core/error.h"
#include "method/losses.h"

namespace amalgam {

void validate(const ObjectiveOptions& o) {
  require(o.method == "cfl" || o.method == "kd" || o.method == "fitnet",
          "--method: expected cfl, kd or fitnet, got '" + o.method + "'");
  require(o.temperature > 0, "--temperature: must be > 0");
  require(o.lambda_kd >= 0, "--lambda-kd: must be >= 0");
  require(o.lambda_cf >= 0, "--lambda-cf: must be >= 0");
  require(o.beta >= 0, "--beta: must be >= 0");
  for (double s : o.sigmas) require(s > 0, "--mmd-sigmas: every bandwidth must be > 0");
}

at::Tensor soft_targets(const std::vector<ModelOutput>& teachers, double temperature) {
  std::vector<at::Tensor> logits;
  for (const auto& t : teachers) logits.push_back(t.logits);
  return torch::softmax(torch::cat(logits, 1) / temperature, 1);
}

LossTerms amalgamation_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                            CommonFeatureBlockImpl* block, const ObjectiveOptions& options,
                            HintAdaptersImpl* hints, const BatchGather& gather) {
  LossTerms terms;
  const double t = options.temperature;
  terms.kd = t * t * soft_cross_entropy(student.logits / t, soft_targets(teachers, t));
  terms.mmd = torch::zeros({}, student.logits.options());
  terms.recon = torch::zeros({}, student.logits.options());
  terms.hint = torch::zeros({}, student.logits.options());
  if (options.method == "cfl") {
    require(block != nullptr, "cfl: a common feature block is required");
    const auto& sigmas = options.sigmas.empty() ? default_mmd_sigmas() : options.sigmas;
    const auto whole = [&](const at::Tensor& x) { return gather ? gather(x) : x; };
    const at::Tensor h_s = block->student_common(student.features);
    const at::Tensor h_s_whole = options.use_mmd ? whole(h_s) : h_s;
    for (size_t i = 0; i < teachers.size(); ++i) {
      const at::Tensor h_i = block->teacher_common(i, teachers[i].features);
      if (options.use_mmd) {
        terms.mmd_each.push_back(mmd_loss(h_s_whole, whole(h_i), sigmas));
        terms.mmd = terms.mmd + terms.mmd_each.back();
      }
      if (options.use_reconstruction) {
        terms.recon_each.push_back(
            torch::mse_loss(block->reconstruct(i, h_i), teachers[i].features));
        terms.recon = terms.recon + terms.recon_each.back();
      }
    }
  }
  if (options.method == "fitnet") {
    require(hints != nullptr, "fitnet: hint adapters are required");
    for (size_t i = 0; i < teachers.size(); ++i)
      terms.hint =
          terms.hint + torch::mse_loss(hints->hint(i, student.features), teachers[i].features);
  }
  terms.total = options.lambda_kd * terms.kd +
                options.lambda_cf * (terms.mmd + options.beta * terms.recon + terms.hint);
  return terms;
}

}  // namespace amalgam

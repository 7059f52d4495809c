// Knowledge distillation: the student imitates the softmax of the teachers' concatenated logits.
#include <torch/torch.h>

#include "method/objective.h"

namespace amalgam {
namespace {

class KdObjectiveImpl : public ObjectiveImpl {
 public:
  explicit KdObjectiveImpl(const ObjectiveConfig& config) : config_(config) {}

  LossTerms loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                 const BatchContext&) override {
    LossTerms terms;
    terms.add("kd", soft_target_loss(student, teachers, config_.temperature));
    terms.total = config_.lambda_kd * terms.part("kd");
    return terms;
  }

 private:
  ObjectiveConfig config_;
};

}  // namespace

Objective make_kd_objective(const ObjectiveSetup& setup) {
  return std::make_shared<KdObjectiveImpl>(setup.config);
}

}  // namespace amalgam

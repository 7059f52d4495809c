// FitNet hints + soft targets: the student's feature map regressed onto each teacher's through a
// 1x1 adapter per teacher.
#include <torch/torch.h>

#include "method/hint_adapters.h"
#include "method/objective.h"

namespace amalgam {
namespace {

class FitnetObjectiveImpl : public ObjectiveImpl {
 public:
  explicit FitnetObjectiveImpl(const ObjectiveSetup& setup)
      : config_(setup.config), lr_mult_(setup.parts_lr_mult) {
    hints_ = register_module("hints", HintAdapters(setup.student_shape, setup.teacher_shapes));
  }

  LossTerms loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                 const BatchContext&) override {
    LossTerms terms;
    terms.add("kd", soft_target_loss(student, teachers, config_.temperature));
    at::Tensor hint = torch::zeros({}, student.logits.options());
    for (size_t i = 0; i < teachers.size(); ++i)
      hint = hint + torch::mse_loss(hints_->hint(i, student.features).to(torch::kFloat32),
                                    teachers[i].features);
    terms.add("hint", hint);
    terms.total = config_.lambda_kd * terms.part("kd") + config_.lambda_cf * hint;
    return terms;
  }

  std::vector<ParamGroup> parameter_groups() override { return {{hints_->parameters(), lr_mult_}}; }

 private:
  ObjectiveConfig config_;
  double lr_mult_;
  HintAdapters hints_{nullptr};
};

}  // namespace

Objective make_fitnet_objective(const ObjectiveSetup& setup) {
  return std::make_shared<FitnetObjectiveImpl>(setup);
}

}  // namespace amalgam

// Common Feature Learning as the paper states it (Ye et al., IJCAI 2019): soft targets from the
// teachers' concatenated logits, plus MMD between the student's and each teacher's features in a
// learned common space, and reconstruction of each teacher's feature map from its common feature
// so the space keeps the teachers' information.
#include <torch/torch.h>

#include "method/common_space_loss.h"
#include "method/objective.h"

namespace amalgam {
namespace {

class CflPaperObjectiveImpl : public ObjectiveImpl {
 public:
  explicit CflPaperObjectiveImpl(const ObjectiveSetup& setup)
      : config_(setup.config), lr_mult_(setup.parts_lr_mult) {
    block_ = register_module("block", make_common_feature_block(setup));
  }

  LossTerms loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                 const BatchContext& batch) override {
    LossTerms terms;
    terms.add("kd", soft_target_loss(student, teachers, config_.temperature));
    const CommonSpaceLoss common =
        common_space_loss(*block_, student, teachers, config_, batch.gather);
    terms.add("mmd", common.mmd);
    terms.add("recon", common.recon);
    terms.total = config_.lambda_kd * terms.part("kd") +
                  config_.lambda_cf * (common.mmd + config_.beta * common.recon);
    return terms;
  }

  std::vector<ParamGroup> parameter_groups() override {
    // The fixed-space control trains the decoders alone (they do not reach the student).
    if (config_.fixed_common_space) return {{block_->decoder_parameters(), lr_mult_}};
    return {{block_->parameters(), lr_mult_}};
  }

  CommonFeatureBlockImpl* common_space() override { return block_.get(); }

  nlohmann::json summary() override { return common_space_summary(*block_); }

 private:
  ObjectiveConfig config_;
  double lr_mult_;
  CommonFeatureBlock block_{nullptr};
};

}  // namespace

Objective make_cfl_paper_objective(const ObjectiveSetup& setup) {
  return std::make_shared<CflPaperObjectiveImpl>(setup);
}

}  // namespace amalgam

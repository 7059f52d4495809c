// Common Feature Learning (Ye et al., IJCAI 2019): soft targets, plus MMD between the student's
// and each teacher's features in a learned common space, and reconstruction of each teacher's
// feature map from its common feature so the space keeps the teachers' information.
#include <torch/torch.h>

#include "method/common_feature_block.h"
#include "method/losses.h"
#include "method/objective.h"

namespace amalgam {
namespace {

class CflObjectiveImpl : public ObjectiveImpl {
 public:
  explicit CflObjectiveImpl(const ObjectiveSetup& setup)
      : config_(setup.config), lr_mult_(setup.parts_lr_mult) {
    CommonFeatureBlockOptions options;
    options.teacher_shapes = setup.teacher_shapes;
    options.student_shape = setup.student_shape;
    options.common_channels = config_.common_channels;
    options.extractor_blocks = config_.extractor_blocks;
    block_ = register_module("block", CommonFeatureBlock(options));
    if (config_.fixed_common_space)
      for (auto& p : block_->common_space_parameters()) p.set_requires_grad(false);
  }

  LossTerms loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                 const BatchContext& batch) override {
    LossTerms terms;
    terms.add("kd", soft_target_loss(student, teachers, config_.temperature));
    const auto& sigmas = config_.sigmas.empty() ? default_mmd_sigmas() : config_.sigmas;
    // MMD compares distributions, so in data-parallel runs it sees the whole batch.
    const auto whole = [&](const at::Tensor& x) { return batch.gather ? batch.gather(x) : x; };
    at::Tensor mmd = torch::zeros({}, student.logits.options());
    at::Tensor recon = torch::zeros({}, student.logits.options());
    const at::Tensor h_s = block_->student_common(student.features);
    const at::Tensor h_s_whole = config_.use_mmd ? whole(h_s) : h_s;
    for (size_t i = 0; i < teachers.size(); ++i) {
      const at::Tensor h_i = block_->teacher_common(i, teachers[i].features);
      if (config_.use_mmd) mmd = mmd + mmd_loss(h_s_whole, whole(h_i), sigmas);
      if (config_.use_reconstruction)
        recon = recon + torch::mse_loss(block_->reconstruct(i, h_i), teachers[i].features);
    }
    terms.add("mmd", mmd);
    terms.add("recon", recon);
    terms.total =
        config_.lambda_kd * terms.part("kd") + config_.lambda_cf * (mmd + config_.beta * recon);
    return terms;
  }

  std::vector<ParamGroup> parameter_groups() override {
    // The fixed-space control trains the decoders alone (they do not reach the student).
    if (config_.fixed_common_space) return {{block_->decoder_parameters(), lr_mult_}};
    return {{block_->parameters(), lr_mult_}};
  }

  CommonFeatureBlockImpl* common_space() override { return block_.get(); }

  nlohmann::json summary() override {
    const auto& o = block_->options();
    return {{"common_space",
             {{"channels", o.common_channels},
              {"grid", {o.student_shape[1], o.student_shape[2]}},
              {"extractor_blocks", o.extractor_blocks},
              {"block_parameters", count_parameters(*block_)}}}};
  }

 private:
  ObjectiveConfig config_;
  double lr_mult_;
  CommonFeatureBlock block_{nullptr};
};

}  // namespace

Objective make_cfl_objective(const ObjectiveSetup& setup) {
  return std::make_shared<CflObjectiveImpl>(setup);
}

}  // namespace amalgam

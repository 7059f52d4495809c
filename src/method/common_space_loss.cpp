#include "method/common_space_loss.h"

#include <torch/torch.h>

#include "method/losses.h"

namespace amalgam {

CommonFeatureBlock make_common_feature_block(const ObjectiveSetup& setup) {
  CommonFeatureBlockOptions options;
  options.teacher_shapes = setup.teacher_shapes;
  options.student_shape = setup.student_shape;
  options.common_channels = setup.config.common_space->channels;
  options.extractor_blocks = setup.config.common_space->extractor_blocks;
  CommonFeatureBlock block(options);
  if (setup.config.common_space->fixed)
    for (auto& p : block->common_space_parameters()) p.set_requires_grad(false);
  return block;
}

CommonSpaceLoss common_space_loss(CommonFeatureBlockImpl& block, const ModelOutput& student,
                                  const std::vector<ModelOutput>& teachers,
                                  const CommonSpaceOptions& config, const BatchGather& gather,
                                  const std::vector<at::Tensor>& weights) {
  const auto& sigmas = config.sigmas.empty() ? default_mmd_sigmas() : config.sigmas;
  // MMD compares distributions, so in data-parallel runs it sees the whole batch.
  const auto whole = [&](const at::Tensor& x) { return gather ? gather(x) : x; };
  CommonSpaceLoss loss{torch::zeros({}, student.logits.options()),
                       torch::zeros({}, student.logits.options())};
  // The block's convolutions run at the run's precision (autocast); what the losses compare is
  // float32, and so is what data-parallel runs exchange.
  const at::Tensor h_s = block.student_common(student.features).to(torch::kFloat32);
  const at::Tensor h_s_whole = config.use_mmd ? whole(h_s) : h_s;
  for (size_t i = 0; i < teachers.size(); ++i) {
    const at::Tensor h_i = block.teacher_common(i, teachers[i].features).to(torch::kFloat32);
    if (config.use_mmd)
      loss.mmd = loss.mmd + (weights.empty() ? mmd_loss(h_s_whole, whole(h_i), sigmas)
                                             : weighted_mmd_loss(h_s_whole, whole(h_i),
                                                                 whole(weights[i]), sigmas));
    if (config.use_reconstruction)
      loss.recon = loss.recon + torch::mse_loss(block.reconstruct(i, h_i).to(torch::kFloat32),
                                                teachers[i].features);
  }
  return loss;
}

nlohmann::json common_space_summary(CommonFeatureBlockImpl& block) {
  const auto& o = block.options();
  return {{"common_space",
           {{"channels", o.common_channels},
            {"grid", {o.student_shape[1], o.student_shape[2]}},
            {"extractor_blocks", o.extractor_blocks},
            {"block_parameters", count_parameters(block)}}}};
}

}  // namespace amalgam

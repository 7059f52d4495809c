// The common-space terms of CFL, shared by its objectives: MMD between the student's and each
// teacher's common features, and reconstruction of each teacher's feature map.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "method/common_feature_block.h"
#include "method/objective.h"

namespace amalgam {

/// The common feature block for a run's teachers and student (setup.config has a common space).
CommonFeatureBlock make_common_feature_block(const ObjectiveSetup& setup);

/// The two common-space terms of one batch, each summed over the teachers.
struct CommonSpaceLoss {
  at::Tensor mmd;    ///< sum over teachers of MMD²(h_s, h_i)
  at::Tensor recon;  ///< sum over teachers of MSE(dec_i(h_i), f_i)
};

/// Computes the terms `options` asks for (use_mmd, use_reconstruction; the others are zeros).
/// `weights`, when not empty, hold per teacher each image's weight [B] for the MMD (its
/// responsibility for the image); `gather` widens the MMD to the whole batch in data-parallel runs.
CommonSpaceLoss common_space_loss(CommonFeatureBlockImpl& block, const ModelOutput& student,
                                  const std::vector<ModelOutput>& teachers,
                                  const CommonSpaceOptions& options, const BatchGather& gather,
                                  const std::vector<at::Tensor>& weights = {});

/// What --dry-run shows of a common feature block.
nlohmann::json common_space_summary(CommonFeatureBlockImpl& block);

}  // namespace amalgam

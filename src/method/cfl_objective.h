// The amalgamation objective: soft targets, plus MMD and reconstruction in the common space.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "method/common_feature_block.h"
#include "method/hint_adapters.h"
#include "models/network.h"

namespace amalgam {

/// Weights and settings of the amalgamation loss.
struct ObjectiveOptions {
  std::string method = "cfl";  ///< cfl | kd (soft targets alone) | fitnet (hints + soft targets)
  double temperature = 1.0;    ///< T of the soft targets
  double lambda_kd = 1.0;      ///< weight of the soft-target term
  double lambda_cf = 10.0;     ///< weight of the feature terms (common-feature, or hints)
  double beta = 1.0;           ///< weight of reconstruction inside the common-feature terms
  std::vector<double> sigmas;  ///< MMD kernel bandwidths (empty: the defaults)
  bool use_mmd = true;         ///< cfl: include the MMD term (off: an ablation)
  bool use_reconstruction = true;  ///< cfl: include the reconstruction term (off: an ablation)
};

/// The loss and its terms for one batch; scalars (mmd/recon are zero for kd).
struct LossTerms {
  at::Tensor total;                    ///< what is minimised
  at::Tensor kd;                       ///< T² · softCE(student/T, softmax(concat teachers/T))
  at::Tensor mmd;                      ///< sum over teachers of MMD²(h_s, h_i)
  at::Tensor recon;                    ///< sum over teachers of MSE(dec_i(h_i), f_i)
  at::Tensor hint;                     ///< fitnet: sum over teachers of MSE(adapter_i(f_s), f_i)
  std::vector<at::Tensor> mmd_each;    ///< per teacher
  std::vector<at::Tensor> recon_each;  ///< per teacher
};

/// Throws Error naming the option for a method other than cfl/kd or a nonsense weight.
void validate(const ObjectiveOptions& options);

/// Soft targets: softmax of the teachers' concatenated logits divided by T.
at::Tensor soft_targets(const std::vector<ModelOutput>& teachers, double temperature);

/// Maps a process's share of a batch to the whole batch (data-parallel runs: every rank's rows,
/// differentiably); empty when one process holds the whole batch.
using BatchGather = std::function<at::Tensor(const at::Tensor&)>;

/// Computes the amalgamation loss. `block` is needed by cfl, `hints` by fitnet; either may be null
/// otherwise. `gather`, when set, widens the MMD's samples to the whole batch: MMD compares
/// distributions, so it is not a mean of per-image terms as the others are.
LossTerms amalgamation_loss(const ModelOutput& student, const std::vector<ModelOutput>& teachers,
                            CommonFeatureBlockImpl* block, const ObjectiveOptions& options,
                            HintAdaptersImpl* hints = nullptr, const BatchGather& gather = {});

}  // namespace amalgam

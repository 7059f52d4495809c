// The JSON form of the training options: a run directory's config.json, and what --resume reads.
#pragma once

#include <nlohmann/json.hpp>

#include "data/augment.h"
#include "method/cfl_objective.h"
#include "training/amalgamate.h"
#include "training/optimizer.h"

namespace amalgam {

// Keys are the member names; reading requires every key.
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(AugmentOptions, crop_padding, horizontal_flip)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TrainOptions, epochs, batch_size, lr, head_lr_mult,
                                   block_lr_mult, weight_decay, schedule, step_epochs, gamma, seed,
                                   threads, device, augment)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ObjectiveOptions, method, temperature, lambda_kd, lambda_cf,
                                   beta, sigmas, use_mmd, use_reconstruction)

/// Every field but the in-memory student_network (a TorchScript student is named by its spec).
void to_json(nlohmann::json& j, const AmalgamateOptions& o);
void from_json(const nlohmann::json& j, AmalgamateOptions& o);

}  // namespace amalgam

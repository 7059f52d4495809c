// The JSON forms of the training configs: a run directory's config.json, what --resume reads,
// and the epoch history a run checkpoint keeps. Keys are the member names; a key left out reads
// as the member's default.
#pragma once

#include <nlohmann/json.hpp>

#include "data/augment.h"
#include "method/objective.h"
#include "models/zoo.h"
#include "training/amalgamate.h"
#include "training/optimizer.h"

namespace amalgam {

/// "cosine" | "step" | "constant"; reading anything else throws Error.
void to_json(nlohmann::json& j, const Schedule& schedule);
void from_json(const nlohmann::json& j, Schedule& schedule);

/// The schedule called `name`; throws Error naming --schedule otherwise.
Schedule parse_schedule(const std::string& name);

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AugmentOptions, crop_padding, horizontal_flip,
                                                mixup_alpha, random_resized_crop, crop_scale,
                                                crop_ratio)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainOptions, epochs, batch_size, lr, head_lr_mult,
                                                block_lr_mult, weight_decay, schedule, step_epochs,
                                                gamma, seed, threads, device, precision, augment,
                                                max_loss_growth, min_steps, steps)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(AmalgamateConfig, student, objective, train,
                                                cache_teachers, teacher_cache_limit,
                                                checkpoint_every, log_every, channels_last,
                                                teachers_see_clean_images, sync_batchnorm)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EpochStats, epoch, loss, images_per_second, seconds)

}  // namespace amalgam

#include "training/options_json.h"

#include <nlohmann/json.hpp>

#include "models/zoo.h"

namespace amalgam {

void to_json(nlohmann::json& j, const AugmentOptions& o) {
  j = {{"crop_padding", o.crop_padding}, {"horizontal_flip", o.horizontal_flip}};
}

void from_json(const nlohmann::json& j, AugmentOptions& o) {
  j.at("crop_padding").get_to(o.crop_padding);
  j.at("horizontal_flip").get_to(o.horizontal_flip);
}

void to_json(nlohmann::json& j, const TrainOptions& o) {
  j = {{"epochs", o.epochs},
       {"batch_size", o.batch_size},
       {"lr", o.lr},
       {"head_lr_mult", o.head_lr_mult},
       {"block_lr_mult", o.block_lr_mult},
       {"weight_decay", o.weight_decay},
       {"schedule", o.schedule},
       {"step_epochs", o.step_epochs},
       {"gamma", o.gamma},
       {"seed", o.seed},
       {"threads", o.threads},
       {"device", o.device},
       {"augment", o.augment}};
}

void from_json(const nlohmann::json& j, TrainOptions& o) {
  j.at("epochs").get_to(o.epochs);
  j.at("batch_size").get_to(o.batch_size);
  j.at("lr").get_to(o.lr);
  j.at("head_lr_mult").get_to(o.head_lr_mult);
  j.at("block_lr_mult").get_to(o.block_lr_mult);
  j.at("weight_decay").get_to(o.weight_decay);
  j.at("schedule").get_to(o.schedule);
  j.at("step_epochs").get_to(o.step_epochs);
  j.at("gamma").get_to(o.gamma);
  j.at("seed").get_to(o.seed);
  j.at("threads").get_to(o.threads);
  j.at("device").get_to(o.device);
  j.at("augment").get_to(o.augment);
}

void to_json(nlohmann::json& j, const ObjectiveOptions& o) {
  j = {{"method", o.method},       {"temperature", o.temperature},
       {"lambda_kd", o.lambda_kd}, {"lambda_cf", o.lambda_cf},
       {"beta", o.beta},           {"sigmas", o.sigmas},
       {"use_mmd", o.use_mmd},     {"use_reconstruction", o.use_reconstruction}};
}

void from_json(const nlohmann::json& j, ObjectiveOptions& o) {
  j.at("method").get_to(o.method);
  j.at("temperature").get_to(o.temperature);
  j.at("lambda_kd").get_to(o.lambda_kd);
  j.at("lambda_cf").get_to(o.lambda_cf);
  j.at("beta").get_to(o.beta);
  j.at("sigmas").get_to(o.sigmas);
  j.at("use_mmd").get_to(o.use_mmd);
  j.at("use_reconstruction").get_to(o.use_reconstruction);
}

void to_json(nlohmann::json& j, const AmalgamateOptions& o) {
  j = {{"student", o.student},
       {"objective", o.objective},
       {"common_channels", o.common_channels},
       {"extractor_blocks", o.extractor_blocks},
       {"train", o.train},
       {"cache_teachers", o.cache_teachers},
       {"fixed_common_space", o.fixed_common_space},
       {"teacher_cache_limit", o.teacher_cache_limit},
       {"channels_last", o.channels_last},
       {"checkpoint_every", o.checkpoint_every},
       {"log_every", o.log_every}};
}

void from_json(const nlohmann::json& j, AmalgamateOptions& o) {
  j.at("student").get_to(o.student);
  j.at("objective").get_to(o.objective);
  j.at("common_channels").get_to(o.common_channels);
  j.at("extractor_blocks").get_to(o.extractor_blocks);
  j.at("train").get_to(o.train);
  j.at("cache_teachers").get_to(o.cache_teachers);
  j.at("fixed_common_space").get_to(o.fixed_common_space);
  j.at("teacher_cache_limit").get_to(o.teacher_cache_limit);
  j.at("channels_last").get_to(o.channels_last);
  j.at("checkpoint_every").get_to(o.checkpoint_every);
  o.log_every = j.value("log_every", o.log_every);
}

}  // namespace amalgam

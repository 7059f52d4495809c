#include "training/options_json.h"

#include <nlohmann/json.hpp>

#include "models/zoo.h"

namespace amalgam {

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
       {"sync_batchnorm", o.sync_batchnorm},
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
  o.sync_batchnorm = j.value("sync_batchnorm", o.sync_batchnorm);
}

}  // namespace amalgam

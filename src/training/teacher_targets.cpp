#include "training/teacher_targets.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "distributed/sharded_cache.h"
#include "training/amalgamate.h"

namespace amalgam {

TeacherTargets::TeacherTargets(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                               const AmalgamateConfig& config, const TeacherOutputCache* given,
                               ProcessGroup* group, c10::Device device)
    : teachers_(teachers), device_(device) {
  if (config.train.augment.enabled()) {
    log_info("amalgamate: augmentation on, teachers run on every batch");
    return;
  }
  cache_ = given;
  if (cache_ == nullptr && config.cache_teachers) {
    const int64_t bytes = teacher_cache_bytes(teachers, transfer.size());
    if (bytes <= config.teacher_cache_limit) {
      const double start = now_seconds();
      own_ = group != nullptr
                 ? cache_teacher_outputs_sharded(teachers, transfer.images(), kInferenceBatch,
                                                 device, *group)
                 : cache_teacher_outputs(teachers, transfer.images(), kInferenceBatch, device);
      cache_ = &own_;
      log_info("amalgamate: cached teacher outputs (" + std::to_string(bytes >> 20) + " MiB) in " +
               std::to_string(now_seconds() - start) + " s");
    } else {
      log_info("amalgamate: teacher outputs need " + std::to_string(bytes >> 20) +
               " MiB, over the cache limit; teachers run on every batch");
    }
  }
  AMALGAM_CHECK(cache_ == nullptr || (cache_->outputs.size() == teachers.size() &&
                                      cache_->outputs.front().logits.size(0) == transfer.size()),
                "amalgamate: the teacher cache does not match the teachers and transfer set");
}

std::vector<ModelOutput> TeacherTargets::for_batch(const at::Tensor& indices,
                                                   const at::Tensor& images) const {
  return cache_ != nullptr ? cache_->gather(indices, device_) : teacher_outputs(teachers_, images);
}

}  // namespace amalgam

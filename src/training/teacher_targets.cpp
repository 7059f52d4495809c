#include "training/teacher_targets.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "distributed/process_group.h"
#include "distributed/sharded_cache.h"
#include "training/amalgamate.h"

namespace amalgam {
namespace {

// Rows begin*stride, (begin+1)*stride, ... up to end*stride (exclusive).
std::vector<int64_t> row_range(int64_t begin, int64_t end, int64_t stride) {
  std::vector<int64_t> rows;
  for (int64_t i = begin; i < end; ++i) rows.push_back(i * stride);
  return rows;
}

}  // namespace

TeacherTargets::TeacherTargets(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                               const AmalgamateConfig& config, const TeacherOutputCache* given,
                               ProcessGroup* group, c10::Device device)
    : teachers_(teachers),
      device_(device),
      precision_(parse_precision(config.train.precision, device)),
      // Every teacher call, cached or per batch, sees one batch shape: a step's rows on this rank.
      shard_batch_(config.train.batch_size / (group != nullptr ? group->size() : 1)) {
  if (config.train.augment.enabled() && !config.teachers_see_clean_images) {
    log_info("amalgamate: augmentation on, teachers run on every batch");
    return;
  }
  if (transfer.streams() && given == nullptr) {
    log_info("amalgamate: the transfer set streams from disk; teachers run on every batch");
    return;
  }
  cache_ = given;
  if (cache_ == nullptr && config.cache_teachers) {
    // The sharded cache stays float32 (its rows are exchanged as float32).
    const Precision precision = group != nullptr ? Precision::kFp32 : precision_;
    const int64_t bytes = teacher_cache_bytes(teachers, transfer.size(), precision);
    if (bytes <= config.teacher_cache_limit) {
      const double start = now_seconds();
      own_ = group != nullptr ? cache_teacher_outputs_sharded(teachers, transfer.images(),
                                                              shard_batch_, device, *group)
                              : cache_teacher_outputs(teachers, transfer.images(), shard_batch_,
                                                      device, precision);
      cache_ = &own_;
      log_info("amalgamate: cached teacher outputs (" + std::to_string(own_.bytes() >> 20) +
               " MiB) in " + std::to_string(now_seconds() - start) + " s");
    } else {
      log_info("amalgamate: teacher outputs need " + std::to_string(bytes >> 20) +
               " MiB, over the cache limit; teachers run on every batch");
    }
  }
  AMALGAM_CHECK(cache_ == nullptr || (cache_->outputs.size() == teachers.size() &&
                                      cache_->outputs.front().logits.size(0) == transfer.size()),
                "amalgamate: the teacher cache does not match the teachers and transfer set");
  if (cache_ != nullptr) warn_if_degenerate(transfer_logits(transfer));
}

void TeacherTargets::warn_if_degenerate(const std::vector<at::Tensor>& logits) const {
  for (size_t i = 0; i < teachers_.size(); ++i) {
    const std::string warning = degenerate_teacher_warning(teachers_[i], logits[i]);
    if (!warning.empty()) log_warning(warning);
  }
}

std::vector<ModelOutput> TeacherTargets::for_batch(const at::Tensor& indices,
                                                   const at::Tensor& images) const {
  return cache_ != nullptr ? cache_->gather(indices, device_) : run_teachers(images);
}

std::vector<ModelOutput> TeacherTargets::run_teachers(const at::Tensor& images) const {
  std::vector<ModelOutput> outputs = teacher_outputs(teachers_, pad_rows(images, shard_batch_));
  for (auto& o : outputs) {
    o.logits = o.logits.slice(0, 0, images.size(0));
    if (o.features.defined()) o.features = o.features.slice(0, 0, images.size(0));
  }
  return outputs;
}

std::vector<at::Tensor> TeacherTargets::transfer_logits(const TransferSet& transfer) const {
  std::vector<at::Tensor> logits(teachers_.size());
  if (cache_ != nullptr) {
    for (size_t i = 0; i < teachers_.size(); ++i) logits[i] = cache_->outputs[i].logits;
    return logits;
  }
  std::vector<std::vector<at::Tensor>> chunks(teachers_.size());
  const double start = now_seconds();
  // A streamed set: an evenly spaced sample (the routing is estimated on it, then applied to each
  // batch), so the pass before the first step does not grow with the set.
  const int64_t count =
      transfer.streams() ? std::min(kRoutingSample, transfer.size()) : transfer.size();
  const int64_t stride = transfer.size() / count;
  for (int64_t begin = 0; begin < count; begin += shard_batch_) {
    const at::Tensor images =
        transfer.streams()
            ? transfer.input_rows(row_range(begin, std::min(begin + shard_batch_, count), stride))
            : to_network_input(transfer.images().slice(0, begin, begin + shard_batch_), device_);
    std::vector<ModelOutput> outputs;
    {
      AutocastGuard autocast(precision_, device_);
      outputs = run_teachers(images.to(device_));
    }
    for (size_t i = 0; i < teachers_.size(); ++i)
      chunks[i].push_back(outputs[i].logits.to(torch::kCPU, torch::kFloat32));
  }
  for (size_t i = 0; i < teachers_.size(); ++i) logits[i] = torch::cat(chunks[i], 0);
  if (transfer.streams())
    log_info("amalgamate: teachers' logits on " + std::to_string(count) + " of the " +
             std::to_string(transfer.size()) + " streamed transfer images (every " +
             std::to_string(stride) + ") in " + std::to_string(now_seconds() - start) + " s");
  warn_if_degenerate(logits);
  return logits;
}

}  // namespace amalgam

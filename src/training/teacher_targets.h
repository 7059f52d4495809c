// Where a run's teacher outputs come from: a cache computed once, or the teachers themselves.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <vector>

#include "data/transfer_set.h"
#include "teachers/teacher.h"

namespace amalgam {

class ProcessGroup;
struct AmalgamateConfig;

/// The teachers' outputs for a run's batches. Frozen teachers fed the same images give the same
/// outputs every epoch, so they are computed once and looked up (bench: -17% per epoch after the
/// first), unless the student sees augmented images that the teachers must see too (without
/// config.teachers_see_clean_images), the
/// cache would not fit config.teacher_cache_limit, or config.cache_teachers is off.
/// Images of a streamed transfer set the teachers answer before the first step, to estimate the
/// routing (then applied to each batch). Two ResNet-18 teachers at 224 px answered 2,048 in 92 s
/// on 2 cores (bench/streaming.sh); 512 take a quarter of that, and give a task's share to
/// +-2.2 points (the binomial standard error at 50%).
constexpr int64_t kRoutingSample = 512;

class TeacherTargets {
 public:
  /// `given`, when set, must hold the teachers' outputs for `transfer` (shared by several runs);
  /// `group` set: the cache is computed by all ranks together.
  TeacherTargets(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                 const AmalgamateConfig& config, const TeacherOutputCache* given,
                 ProcessGroup* group, c10::Device device);
  /// The outputs for transfer images `indices` whose pixels, as the teachers see them, are
  /// `images`.
  std::vector<ModelOutput> for_batch(const at::Tensor& indices, const at::Tensor& images) const;
  /// Every teacher's logits for every transfer image ([N,K_i] each, CPU): the cache's, or one
  /// inference pass over `transfer`; for a streamed set, over kRoutingSample evenly spaced ones.
  std::vector<at::Tensor> transfer_logits(const TransferSet& transfer) const;
  /// Logs a warning for each teacher whose `logits` over the transfer set look degenerate.
  void warn_if_degenerate(const std::vector<at::Tensor>& logits) const;
  /// The cache in use (null when the teachers run on every batch).
  const TeacherOutputCache* cache() const { return cache_; }

 private:
  /// The teachers on float `images` [b,...], b <= shard_batch_, run at shard_batch_ rows.
  std::vector<ModelOutput> run_teachers(const at::Tensor& images) const;

  const std::vector<Teacher>& teachers_;
  c10::Device device_;
  Precision precision_;  ///< the run's: the steps run online teachers at it, and so does the
                         ///< routing's pass (its logits are the steps' logits)
  int64_t shard_batch_;  ///< rows of one step on this rank: the batch every teacher call sees
  TeacherOutputCache own_;
  const TeacherOutputCache* cache_ = nullptr;
};

}  // namespace amalgam

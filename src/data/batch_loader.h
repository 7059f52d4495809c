// Seeded, shuffled mini-batches, the next one prepared while the current one trains.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <future>
#include <optional>
#include <vector>

#include "data/augment.h"

namespace amalgam {

/// How a BatchLoader orders and cuts its data.
struct BatchLoaderOptions {
  int64_t batch_size = 128;  ///< images per batch
  bool shuffle = true;       ///< reshuffle every epoch (seeded by seed and epoch)
  bool drop_last = false;    ///< drop a final batch smaller than batch_size
  uint64_t seed = 0;         ///< base of the per-epoch shuffle seed
  /// Data-parallel runs: every batch is cut into shard_count equal parts (batch_size must divide,
  /// and drop_last hold) and this loader yields part shard_index, so the ranks' shards of a step
  /// are disjoint and together make the batch one process would take.
  int64_t shard_count = 1;
  int64_t shard_index = 0;  ///< which part, 0..shard_count-1
  /// RandomResizedCrop, when on, handed to the fetch of each batch with the step's draws
  /// (augment_seed(seed, epoch, batch)); the loader with a tensor of images ignores it.
  const AugmentOptions* augment = nullptr;
};

/// Throws Error naming --batch-size unless `batch_size` splits evenly over `ranks` shards.
void require_even_shards(int64_t batch_size, int64_t ranks);

/// One batch: float images in [0,1] and, when the loader has labels, their labels.
struct Batch {
  at::Tensor images;     ///< float [B,C,H,W], values in [0,1]
  at::Tensor labels;     ///< int64 [B]; undefined for unlabeled data
  at::Tensor indices;    ///< int64 [B]: positions of the batch's images in the loader's data
  bool flipped = false;  ///< the images were flipped where decoded (BatchCrops::flips)
};

/// Iterates over uint8 images (and optional labels) in seeded batches; prefetches one batch on a
/// worker thread so data preparation overlaps with compute.
class BatchLoader {
 public:
  /// `labels` may be an undefined tensor (unlabeled data).
  BatchLoader(at::Tensor images, at::Tensor labels, BatchLoaderOptions options);
  /// Images fetched on demand: `fetch(rows, crops)` returns float [b,C,H,W] in [0,1] for set
  /// positions `rows`, cropped by `crops` (a transfer set, decoding files when it streams);
  /// `size` images, unlabeled.
  using Fetch =
      std::function<at::Tensor(const std::vector<int64_t>& rows, const BatchCrops& crops)>;
  BatchLoader(Fetch fetch, int64_t size, BatchLoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// Starts epoch `epoch`: the order is a pure function of (seed, epoch).
  void start_epoch(int64_t epoch);
  /// Skips to batch `index` of the current epoch (resuming a run part-way through an epoch).
  void skip_to(int64_t index);
  /// The next batch of the current epoch, or nothing at its end.
  std::optional<Batch> next();
  /// Batches in one epoch.
  int64_t batches_per_epoch() const;
  /// Number of images.
  int64_t size() const { return size_; }

 private:
  void check_options() const;
  Batch make_batch(int64_t index) const;
  void prefetch(int64_t index);

  at::Tensor images_;
  at::Tensor labels_;
  Fetch fetch_;
  int64_t size_ = 0;
  BatchLoaderOptions options_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0;
  int64_t next_index_ = 0;
  std::future<Batch> pending_;
};

}  // namespace amalgam

#include "data/batch_loader.h"

#include <torch/torch.h>

#include <numeric>

#include "core/error.h"
#include "data/dataset.h"

namespace amalgam {

void require_even_shards(int64_t batch_size, int64_t ranks) {
  AMALGAM_CHECK(batch_size % ranks == 0, "--batch-size: " + std::to_string(batch_size) +
                                             " must be a multiple of the number of ranks (" +
                                             std::to_string(ranks) + ")");
}

void BatchLoader::check_options() const {
  AMALGAM_CHECK(options_.batch_size > 0,
                "--batch-size: must be > 0, got " + std::to_string(options_.batch_size));
  AMALGAM_CHECK(options_.shard_count >= 1 && options_.shard_index >= 0 &&
                    options_.shard_index < options_.shard_count,
                "batch loader: shard index out of range");
  require_even_shards(options_.batch_size, options_.shard_count);
  AMALGAM_CHECK(options_.shard_count == 1 || options_.drop_last,
                "batch loader: sharded batches must all be full (drop_last)");
}

BatchLoader::BatchLoader(Fetch fetch, int64_t size, BatchLoaderOptions options)
    : fetch_(std::move(fetch)), size_(size), options_(options) {
  check_options();
  AMALGAM_CHECK(fetch_ && size_ > 0, "batch loader: need a non-empty image source");
}

BatchLoader::BatchLoader(at::Tensor images, at::Tensor labels, BatchLoaderOptions options)
    : images_(std::move(images)), labels_(std::move(labels)), options_(options) {
  check_options();
  AMALGAM_CHECK(images_.defined() && images_.dim() == 4 && images_.size(0) > 0,
                "batch loader: need a non-empty [N,C,H,W] image tensor");
  size_ = images_.size(0);
  AMALGAM_CHECK(!labels_.defined() || labels_.size(0) == images_.size(0),
                "batch loader: label count differs from image count");
  AMALGAM_CHECK(images_.scalar_type() == torch::kUInt8 && images_.is_contiguous(),
                "batch loader: images must be contiguous uint8");
  AMALGAM_CHECK(
      !labels_.defined() || (labels_.scalar_type() == torch::kInt64 && labels_.is_contiguous()),
      "batch loader: labels must be contiguous int64");
}

BatchLoader::~BatchLoader() {
  if (pending_.valid()) pending_.wait();
}

int64_t BatchLoader::batches_per_epoch() const {
  const int64_t n = size();
  return options_.drop_last ? n / options_.batch_size
                            : (n + options_.batch_size - 1) / options_.batch_size;
}

void BatchLoader::start_epoch(int64_t epoch) {
  if (pending_.valid()) pending_.wait();
  epoch_ = epoch;
  if (options_.shuffle) {
    order_ = seeded_permutation(size(), options_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
  } else {
    order_.resize(static_cast<size_t>(size()));
    std::iota(order_.begin(), order_.end(), 0);
  }
  next_index_ = 0;
  prefetch(0);
}

Batch BatchLoader::make_batch(int64_t index) const {
  const int64_t shard = options_.batch_size / options_.shard_count;
  const int64_t begin = index * options_.batch_size + options_.shard_index * shard;
  const int64_t end = std::min<int64_t>(begin + shard, size());
  std::vector<int64_t> ids(order_.begin() + begin, order_.begin() + end);
  const at::Tensor rows = torch::tensor(ids, torch::kInt64);
  if (fetch_) {
    const BatchCrops crops{options_.augment, augment_seed(options_.seed, epoch_, index),
                           options_.shard_index * shard};
    return {fetch_(ids, crops), at::Tensor(), rows, crops.flips()};
  }
  // Plain loops, no ATen kernels: this runs on the prefetch thread, and an ATen kernel there would
  // start a second OpenMP team that competes with training for the cores (measured: the CFL
  // epoch took 19% longer).
  const int64_t pixels = images_[0].numel();
  Batch batch;
  batch.images = torch::empty({end - begin, images_.size(1), images_.size(2), images_.size(3)},
                              torch::kFloat32);
  const uint8_t* source = images_.data_ptr<uint8_t>();
  float* target = batch.images.data_ptr<float>();
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint8_t* row = source + ids[i] * pixels;
    for (int64_t p = 0; p < pixels; ++p)
      target[static_cast<int64_t>(i) * pixels + p] = row[p] / 255.0f;
  }
  batch.indices = rows;
  if (labels_.defined()) {
    batch.labels = torch::empty({end - begin}, torch::kInt64);
    const int64_t* labels = labels_.data_ptr<int64_t>();
    for (size_t i = 0; i < ids.size(); ++i) batch.labels.data_ptr<int64_t>()[i] = labels[ids[i]];
  }
  return batch;
}

void BatchLoader::prefetch(int64_t index) {
  if (index >= batches_per_epoch()) return;
  pending_ = std::async(std::launch::async, [this, index] { return make_batch(index); });
}

void BatchLoader::skip_to(int64_t index) {
  AMALGAM_CHECK(!order_.empty(), "batch loader: skip_to() before start_epoch()");
  if (pending_.valid()) pending_.wait();
  pending_ = {};
  next_index_ = index;
  prefetch(index);
}

std::optional<Batch> BatchLoader::next() {
  AMALGAM_CHECK(!order_.empty(), "batch loader: next() before start_epoch()");
  if (next_index_ >= batches_per_epoch() || !pending_.valid()) return std::nullopt;
  Batch batch = pending_.get();
  ++next_index_;
  prefetch(next_index_);
  return batch;
}

}  // namespace amalgam

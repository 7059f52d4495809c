#include "data/batch_loader.h"

#include <torch/torch.h>

#include <numeric>

#include "core/error.h"
#include "data/dataset.h"

namespace amalgam {

BatchLoader::BatchLoader(at::Tensor images, at::Tensor labels, BatchLoaderOptions options)
    : images_(std::move(images)), labels_(std::move(labels)), options_(options) {
  require(options_.batch_size > 0,
          "--batch-size: must be > 0, got " + std::to_string(options_.batch_size));
  require(images_.defined() && images_.dim() == 4 && images_.size(0) > 0,
          "batch loader: need a non-empty [N,C,H,W] image tensor");
  require(!labels_.defined() || labels_.size(0) == images_.size(0),
          "batch loader: label count differs from image count");
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
  const int64_t begin = index * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, size());
  std::vector<int64_t> ids(order_.begin() + begin, order_.begin() + end);
  const at::Tensor rows = torch::tensor(ids, torch::kInt64);
  Batch batch;
  batch.images = to_network_input(images_.index_select(0, rows));
  batch.indices = rows;
  if (labels_.defined()) batch.labels = labels_.index_select(0, rows);
  return batch;
}

void BatchLoader::prefetch(int64_t index) {
  if (index >= batches_per_epoch()) return;
  pending_ = std::async(std::launch::async, [this, index] { return make_batch(index); });
}

std::optional<Batch> BatchLoader::next() {
  require(!order_.empty(), "batch loader: next() before start_epoch()");
  if (next_index_ >= batches_per_epoch() || !pending_.valid()) return std::nullopt;
  Batch batch = pending_.get();
  ++next_index_;
  prefetch(next_index_);
  return batch;
}

}  // namespace amalgam

// In-memory labeled image sets for teaching and evaluation, and the splits and subsets of them.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/task.h"

namespace amalgam {

/// Images with their data-set labels: images uint8 [N,C,H,W], labels int64 [N].
struct LabeledImages {
  at::Tensor images;  ///< uint8 [N,C,H,W], pixel values 0..255
  at::Tensor labels;  ///< int64 [N], data-set class ids (or task-local ids after select_task)
  /// Number of images.
  int64_t size() const { return images.defined() ? images.size(0) : 0; }
};

/// Loads split "train" or "test" from a folder of MNIST-family IDX files
/// (train-images-idx3-ubyte[.gz], t10k-... for test), as [N,1,H,W] images.
LabeledImages load_idx_split(const std::string& dir, const std::string& split);

/// A training set split into a part to train on and a held-out validation part.
struct TrainValSplit {
  LabeledImages train;  ///< images used for training and as the transfer set
  LabeledImages val;    ///< held-out images for every choice (never the test split)
};

/// Holds out `val_size` images chosen by a seeded shuffle.
/// The split seed every command uses by default, so teach and amalgamate hold out the same images.
constexpr uint64_t kDefaultSplitSeed = 12345;

TrainValSplit split_train_val(const LabeledImages& data, int64_t val_size, uint64_t seed);

/// Which of `labels` belong to `task`: their positions and their task-local labels 0..k-1.
struct TaskRows {
  at::Tensor rows;          ///< int64 positions into `labels`
  at::Tensor local_labels;  ///< int64 task-local labels of those rows
};

/// Whether any of `labels` (data-set class ids) belongs to `task`.
bool has_task_images(const at::Tensor& labels, const TaskSpec& task);

/// The rows of `labels` (data-set class ids) that belong to `task`; throws Error when none do.
TaskRows task_rows(const at::Tensor& labels, const TaskSpec& task);

/// The images whose label is one of `task.classes`, labels remapped to 0..k-1 in task order.
LabeledImages select_task(const LabeledImages& data, const TaskSpec& task);

/// The images whose label belongs to any of `tasks`, labels kept as data-set class ids.
LabeledImages select_union(const LabeledImages& data, const std::vector<TaskSpec>& tasks);

/// The rows a seeded random subset of at most `n` of `size` items keeps, sorted (all of them when
/// n <= 0 or n >= size).
std::vector<int64_t> subsample_rows(int64_t size, int64_t n, uint64_t seed);

/// A seeded random subset of at most `n` images (all of them when n <= 0 or n >= size).
LabeledImages subsample(const LabeledImages& data, int64_t n, uint64_t seed);

/// uint8 pixels [N,C,H,W] -> float in [0,1], on `device`: the one conversion to network input.
at::Tensor to_network_input(const at::Tensor& images, c10::Device device = c10::Device(c10::kCPU));

/// A seeded permutation of 0..n-1 (std::mt19937_64, independent of LibTorch's generators).
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

}  // namespace amalgam

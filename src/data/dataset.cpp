#include "data/dataset.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <random>

#include "core/error.h"
#include "data/idx.h"

namespace amalgam {
namespace {

std::string find_idx_file(const std::string& dir, const std::string& stem) {
  for (const std::string& name : {stem + ".gz", stem}) {
    const std::string path = (std::filesystem::path(dir) / name).string();
    if (std::filesystem::exists(path)) return path;
  }
  throw Error(dir + ": no " + stem + "[.gz] in this data folder");
}

LabeledImages gather(const LabeledImages& data, const at::Tensor& index) {
  // Image folders without class folders have no labels: their subsets have none either.
  return {data.images.index_select(0, index),
          data.labels.defined() ? data.labels.index_select(0, index) : at::Tensor()};
}

at::Tensor to_index(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kInt64);
}

}  // namespace

LabeledImages load_idx_split(const std::string& dir, const std::string& split) {
  AMALGAM_CHECK(split == "train" || split == "test",
                "split must be 'train' or 'test', got '" + split + "'");
  AMALGAM_CHECK(std::filesystem::is_directory(dir), dir + ": data folder does not exist");
  const std::string prefix = split == "train" ? "train" : "t10k";
  const std::string image_path = find_idx_file(dir, prefix + "-images-idx3-ubyte");
  const std::string label_path = find_idx_file(dir, prefix + "-labels-idx1-ubyte");
  at::Tensor images = read_idx(image_path);
  at::Tensor labels = read_idx(label_path);
  AMALGAM_CHECK(images.dim() == 3, image_path + ": expected a 3-D IDX array [N,H,W], got " +
                                       std::to_string(images.dim()) + "-D");
  AMALGAM_CHECK(labels.dim() == 1, label_path + ": expected a 1-D IDX array of labels");
  AMALGAM_CHECK(images.size(0) == labels.size(0),
                label_path + ": " + std::to_string(labels.size(0)) + " labels for " +
                    std::to_string(images.size(0)) + " images in " + image_path);
  return {images.unsqueeze(1).contiguous(), labels.to(torch::kInt64)};
}

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  return order;
}

TrainValSplit split_train_val(const LabeledImages& data, int64_t val_size, uint64_t seed) {
  AMALGAM_CHECK(val_size >= 0 && val_size < data.size(), "--val-size: must be in [0, " +
                                                             std::to_string(data.size()) +
                                                             "), got " + std::to_string(val_size));
  std::vector<int64_t> order = seeded_permutation(data.size(), seed);
  std::vector<int64_t> val(order.begin(), order.begin() + val_size);
  std::vector<int64_t> train(order.begin() + val_size, order.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  return {gather(data, to_index(train)), gather(data, to_index(val))};
}

bool has_task_images(const at::Tensor& labels, const TaskSpec& task) {
  const auto label = labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < labels.size(0); ++i)
    if (task.local_index(label[i]) >= 0) return true;
  return false;
}

TaskRows task_rows(const at::Tensor& labels, const TaskSpec& task) {
  std::vector<int64_t> keep;
  std::vector<int64_t> local;
  const auto label = labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < labels.size(0); ++i) {
    const int64_t index = task.local_index(label[i]);
    if (index >= 0) {
      keep.push_back(i);
      local.push_back(index);
    }
  }
  AMALGAM_CHECK(!keep.empty(),
                "task '" + task.name + "': no image in the data carries any of its classes");
  return {to_index(keep), to_index(local)};
}

LabeledImages select_task(const LabeledImages& data, const TaskSpec& task) {
  const TaskRows selected = task_rows(data.labels, task);
  return {data.images.index_select(0, selected.rows), selected.local_labels};
}

LabeledImages select_union(const LabeledImages& data, const std::vector<TaskSpec>& tasks) {
  std::vector<int64_t> keep;
  const auto labels = data.labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < data.size(); ++i) {
    for (const auto& task : tasks) {
      if (task.local_index(labels[i]) >= 0) {
        keep.push_back(i);
        break;
      }
    }
  }
  AMALGAM_CHECK(!keep.empty(), "no image in the data carries a class of any task");
  return gather(data, to_index(keep));
}

std::vector<int64_t> subsample_rows(int64_t size, int64_t n, uint64_t seed) {
  std::vector<int64_t> order = seeded_permutation(size, seed);
  if (n <= 0 || n >= size) {
    std::sort(order.begin(), order.end());
    return order;
  }
  order.resize(static_cast<size_t>(n));
  std::sort(order.begin(), order.end());
  return order;
}

LabeledImages subsample(const LabeledImages& data, int64_t n, uint64_t seed) {
  if (n <= 0 || n >= data.size()) return data;
  return gather(data, to_index(subsample_rows(data.size(), n, seed)));
}

at::Tensor to_network_input(const at::Tensor& images, c10::Device device) {
  at::Tensor x = images.to(device, torch::kFloat32);
  // In place only on a fresh copy: float32 input already on `device` comes back as itself.
  return x.is_same(images) ? x.div(255.0f) : x.div_(255.0f);
}

}  // namespace amalgam

#include "experiments/experiment.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "models/checkpoint.h"
#include "models/zoo.h"
#include "training/teach.h"

namespace amalgam {
namespace {

LabeledImages concatenate(const LabeledImages& a, const LabeledImages& b) {
  return {torch::cat({a.images, b.images}), torch::cat({a.labels, b.labels})};
}

}  // namespace

ExperimentData load_experiment_data(const std::string& dir, int64_t val_size, int64_t train_limit,
                                    int64_t test_limit, uint64_t seed) {
  ExperimentData data;
  data.split = split_train_val(load_idx_split(dir, "train"), val_size, kDefaultSplitSeed);
  data.split.train = subsample(data.split.train, train_limit, seed);
  data.test = subsample(load_idx_split(dir, "test"), test_limit, 7);
  return data;
}

ExperimentData cross_domain_data(const ExperimentData& fashion, const LabeledImages& digits,
                                 const DigitsHoldOut& hold_out, int64_t clothing_per_digit) {
  AMALGAM_CHECK(digits.size() > hold_out.val + hold_out.test,
                "cross-domain: " + std::to_string(digits.size()) +
                    " digit images cannot hold out " +
                    std::to_string(hold_out.val + hold_out.test));
  const TrainValSplit test_rest = split_train_val(digits, hold_out.test, kDefaultSplitSeed);
  const TrainValSplit digit_split =
      split_train_val(test_rest.train, hold_out.val, kDefaultSplitSeed);
  const auto both = [&](const LabeledImages& clothing, const LabeledImages& digit, uint64_t seed) {
    const LabeledImages some = subsample(clothing, clothing_per_digit * digit.size(), seed);
    return concatenate(some, digit);
  };
  ExperimentData data;
  data.split.train = both(fashion.split.train, digit_split.train, 1);
  data.split.val = both(fashion.split.val, digit_split.val, 2);
  data.test = both(fashion.test, test_rest.val, 3);
  data.teacher_split = {concatenate(fashion.split.train, digit_split.train),
                        concatenate(fashion.split.val, digit_split.val)};
  return data;
}

TaskSpec fashion_task(const std::string& text) {
  TaskSpec task = parse_task(text);
  for (int64_t c : task.classes)
    if (c < static_cast<int64_t>(fashion_mnist_class_names().size()))
      task.class_names.push_back(fashion_mnist_class_names()[c]);
  if (task.class_names.size() != task.classes.size()) task.class_names.clear();
  return task;
}

ModelSpec zoo_spec(const std::string& arch, int64_t width, int64_t depth) {
  ModelSpec spec;
  spec.arch = arch;
  spec.width = width;
  spec.depth = depth;
  return spec;
}

Teacher obtain_teacher(const TeacherPlan& plan, const TrainValSplit& data, const std::string& path,
                       const TrainOptions& train, const std::string& data_dir, bool retrain,
                       double* seconds) {
  const nlohmann::json key = {{"model", plan.spec},          {"task", plan.task},
                              {"epochs", train.epochs},      {"lr", train.lr},
                              {"seed", train.seed},          {"train_images", data.train.size()},
                              {"val_size", data.val.size()}, {"data", data_dir}};
  const c10::Device device = parse_device(train.device);
  if (!retrain && std::filesystem::exists(sidecar_path(path))) {
    try {
      const auto meta = nlohmann::json::parse(read_whole_file(sidecar_path(path)));
      if (meta.value("recipe", nlohmann::json()) == key) {
        log_info("reusing teacher " + path);
        return load_teacher(path, device);
      }
    } catch (const std::exception& e) {
      log_info(std::string("retraining teacher (") + e.what() + ")");
    }
  }
  const double start = now_seconds();
  TrainOptions teaching = train;  // the recipe's teachers learn at one rate, head included
  teaching.head_lr_mult = teach_defaults().head_lr_mult;
  const TeachResult trained = teach(plan.spec, plan.task, select_task(data.train, plan.task),
                                    select_task(data.val, plan.task), teaching);
  ModelSpec spec = plan.spec;
  spec.num_classes = plan.task.size();
  ensure_directory(std::filesystem::path(path).parent_path().string());
  save_teacher(*trained.network, spec, plan.task, path,
               {{"recipe", key}, {"val_accuracy", trained.val_accuracy.back()}});
  *seconds += now_seconds() - start;
  return load_teacher(path, device);
}

}  // namespace amalgam

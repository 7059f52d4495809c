#include "evaluation/evaluate.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace amalgam {
namespace {

double fraction_equal(const at::Tensor& predicted, const at::Tensor& labels) {
  return predicted.eq(labels).to(torch::kFloat64).mean().item<double>();
}

HeadLayout layout_of(const std::vector<Teacher>& teachers) {
  HeadLayout layout;
  for (const auto& t : teachers) layout.tasks.push_back(t.task);
  return layout;
}

}  // namespace

at::Tensor predict_logits(NetworkImpl& network, const at::Tensor& images, int64_t batch_size) {
  AMALGAM_CHECK(batch_size > 0, "--batch-size: must be > 0");
  const bool was_training = network.is_training();
  network.eval();
  torch::NoGradGuard no_grad;
  const c10::Device device = device_of(network);
  std::vector<at::Tensor> chunks;
  for (int64_t begin = 0; begin < images.size(0); begin += batch_size) {
    const at::Tensor batch = to_network_input(images.slice(0, begin, begin + batch_size), device);
    chunks.push_back(network.forward(batch).logits.to(torch::kCPU));
  }
  network.train(was_training);
  return torch::cat(chunks, 0);
}

double accuracy(NetworkImpl& network, const LabeledImages& data, int64_t offset, int64_t classes,
                int64_t batch_size) {
  const at::Tensor logits =
      predict_logits(network, data.images, batch_size).slice(1, offset, offset + classes);
  AMALGAM_CHECK(logits.size(1) == classes,
                "accuracy: the network has too few outputs for this task");
  return fraction_equal(logits.argmax(1), data.labels);
}

double evaluate_teacher(const Teacher& teacher, const LabeledImages& data, int64_t batch_size) {
  return accuracy(*teacher.network, select_task(data, teacher.task), 0, teacher.task.size(),
                  batch_size);
}

StudentScores evaluate_student(NetworkImpl& student, const HeadLayout& head,
                               const LabeledImages& data, int64_t batch_size) {
  // One pass over the union of the tasks' images serves every score.
  const LabeledImages all = select_union(data, head.tasks);
  const at::Tensor logits = predict_logits(student, all.images, batch_size);
  AMALGAM_CHECK(logits.size(1) == head.total(),
                "student: head has " + std::to_string(logits.size(1)) + " outputs, its layout " +
                    std::to_string(head.total()));
  StudentScores scores;
  for (size_t i = 0; i < head.tasks.size(); ++i) {
    if (!has_task_images(all.labels, head.tasks[i])) {
      scores.task_accuracy.push_back(std::nan(""));
      continue;
    }
    const TaskRows rows = task_rows(all.labels, head.tasks[i]);
    const at::Tensor slice = logits.index_select(0, rows.rows)
                                 .slice(1, head.offset(i), head.offset(i) + head.tasks[i].size());
    scores.task_accuracy.push_back(fraction_equal(slice.argmax(1), rows.local_labels));
  }
  const at::Tensor class_ids = torch::tensor(head.class_ids(), torch::kInt64);
  scores.union_accuracy = fraction_equal(class_ids.index_select(0, logits.argmax(1)), all.labels);
  return scores;
}

double evaluate_ensemble(const std::vector<Teacher>& teachers, const LabeledImages& data,
                         int64_t batch_size) {
  const HeadLayout head = layout_of(teachers);
  const LabeledImages all = select_union(data, head.tasks);
  std::vector<at::Tensor> logits;
  for (const auto& t : teachers)
    logits.push_back(predict_logits(*t.network, all.images, batch_size));
  const at::Tensor class_ids = torch::tensor(head.class_ids(), torch::kInt64);
  return fraction_equal(class_ids.index_select(0, torch::cat(logits, 1).argmax(1)), all.labels);
}

}  // namespace amalgam

#include "evaluation/evaluate.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"

namespace amalgam {

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
  // Routing: the slice with the most softmax mass names the task.
  std::vector<int64_t> sizes;
  for (const auto& t : head.tasks) sizes.push_back(t.size());
  const at::Tensor truth = true_tasks(all.labels, head.tasks);
  const at::Tensor routed = slice_probabilities(logits, sizes).argmax(1);
  scores.routing_accuracy = fraction_equal(routed, truth);
  const auto n = static_cast<int64_t>(head.tasks.size());
  scores.routing_confusion.assign(static_cast<size_t>(n), std::vector<int64_t>(n, 0));
  const at::Tensor cells = torch::bincount(truth * n + routed, {}, n * n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      scores.routing_confusion[i][j] = cells[i * n + j].item<int64_t>();
  // Perfect routing: every image answered within its own task's slice.
  double correct = 0;
  for (size_t i = 0; i < head.tasks.size(); ++i)
    if (!std::isnan(scores.task_accuracy[i]))
      correct += scores.task_accuracy[i] *
                 static_cast<double>(task_rows(all.labels, head.tasks[i]).rows.size(0));
  scores.oracle_union_accuracy = correct / static_cast<double>(all.size());
  return scores;
}

double evaluate_ensemble(const std::vector<Teacher>& teachers, const LabeledImages& data,
                         int64_t batch_size) {
  return evaluate_teacher_routing(teachers, data, RoutingOptions{}, batch_size).concatenated;
}

}  // namespace amalgam

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
    // Under a caller's bf16 autocast (eval --precision) the logits come out bfloat16.
    chunks.push_back(network.forward(batch).logits.to(torch::kCPU, torch::kFloat32));
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

at::Tensor true_tasks(const at::Tensor& labels, const std::vector<TaskSpec>& tasks) {
  at::Tensor truth = torch::full({labels.size(0)}, -1, torch::kInt64);
  for (size_t i = 0; i < tasks.size(); ++i)
    for (int64_t c : tasks[i].classes) truth.masked_fill_(labels.eq(c), static_cast<int64_t>(i));
  return truth;
}

TeacherRoutingScores evaluate_teacher_routing(const std::vector<Teacher>& teachers,
                                              const LabeledImages& data,
                                              const RoutingOptions& options, int64_t batch_size) {
  const HeadLayout head = layout_of(teachers);
  const LabeledImages all = select_union(data, head.tasks);
  std::vector<at::Tensor> logits;
  for (const auto& t : teachers)
    logits.push_back(predict_logits(*t.network, all.images, batch_size));
  return teacher_routing_scores(logits, all.labels, head.tasks, options);
}

TeacherRoutingScores teacher_routing_scores(const std::vector<at::Tensor>& logits,
                                            const at::Tensor& labels,
                                            const std::vector<TaskSpec>& tasks,
                                            const RoutingOptions& options) {
  HeadLayout head;
  head.tasks = tasks;
  const at::Tensor class_ids = torch::tensor(head.class_ids(), torch::kInt64);
  const auto union_of = [&](const at::Tensor& predicted) {
    return fraction_equal(class_ids.index_select(0, predicted), labels);
  };
  TeacherRoutingScores scores;
  const at::Tensor winner = torch::cat(logits, 1).argmax(1);
  scores.concatenated = union_of(winner);
  std::vector<int64_t> task_of_output;
  for (size_t i = 0; i < head.tasks.size(); ++i)
    task_of_output.insert(task_of_output.end(), head.tasks[i].classes.size(),
                          static_cast<int64_t>(i));
  const TaskRouting routing = route_by_teachers(logits, options);
  scores.calibrated = union_of(routed_union_prediction(logits, routing.responsibility));
  const at::Tensor truth = true_tasks(labels, head.tasks);
  scores.calibrated_routing = fraction_equal(routing.task, truth);
  scores.concatenated_routing =
      fraction_equal(torch::tensor(task_of_output, torch::kInt64).index_select(0, winner), truth);
  const at::Tensor sure = routing.confident.nonzero().flatten();
  scores.confident_routing =
      fraction_equal(routing.task.index_select(0, sure), truth.index_select(0, sure));
  scores.confident_share = static_cast<double>(sure.size(0)) / static_cast<double>(labels.size(0));
  scores.oracle = union_of(routed_union_prediction(
      logits, torch::one_hot(truth, head.tasks.size()).to(torch::kFloat32)));
  return scores;
}

double evaluate_ensemble(const std::vector<Teacher>& teachers, const LabeledImages& data,
                         int64_t batch_size) {
  return evaluate_teacher_routing(teachers, data, RoutingOptions{}, batch_size).concatenated;
}

}  // namespace amalgam

#include "routing/teacher_scores.h"

#include <torch/torch.h>

#include "data/head_layout.h"
#include "models/predict.h"

namespace amalgam {

double fraction_equal(const at::Tensor& predicted, const at::Tensor& labels) {
  return predicted.eq(labels).to(torch::kFloat64).mean().item<double>();
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
  const TeacherLogits t = teacher_logits_on(teachers, data, batch_size);
  return teacher_routing_scores(t.logits, t.images.labels, t.tasks, options);
}

TeacherLogits teacher_logits_on(const std::vector<Teacher>& teachers, const LabeledImages& data,
                                int64_t batch_size) {
  TeacherLogits out;
  for (const auto& t : teachers) out.tasks.push_back(t.task);
  out.images = select_union(data, out.tasks);
  for (const auto& t : teachers)
    out.logits.push_back(predict_logits(*t.network, out.images.images, batch_size));
  return out;
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

}  // namespace amalgam

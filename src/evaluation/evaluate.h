// Accuracy of teachers, students and the teachers' ensemble on labeled images.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "data/dataset.h"
#include "method/head_layout.h"
#include "method/routing.h"
#include "models/network.h"
#include "teachers/teacher.h"

namespace amalgam {

/// Logits of `network` for every image, in order, computed in eval mode without autograd on the
/// network's device; returned on the CPU.
at::Tensor predict_logits(NetworkImpl& network, const at::Tensor& images, int64_t batch_size);

/// Accuracy of argmax over logits[offset, offset+classes) against the task-local labels
/// 0..classes-1 of `data` (as select_task makes them).
double accuracy(NetworkImpl& network, const LabeledImages& data, int64_t offset, int64_t classes,
                int64_t batch_size);

/// A teacher's accuracy on the images of its own task.
double evaluate_teacher(const Teacher& teacher, const LabeledImages& data, int64_t batch_size);

/// A student's scores.
struct StudentScores {
  /// per task: argmax over the task's slice of the head (NaN when the data has none of its images)
  std::vector<double> task_accuracy;
  double union_accuracy = 0;  ///< argmax over the whole head, over all tasks' images
  /// Share of images whose task the student's head names (the slice with the most softmax mass).
  double routing_accuracy = 0;
  /// [true task][routed task] image counts.
  std::vector<std::vector<int64_t>> routing_confusion;
  /// Union accuracy were every image routed to its true task: the ceiling of perfect routing.
  double oracle_union_accuracy = 0;
};

/// Scores a student whose head follows `head` on `data` (data-set labels).
StudentScores evaluate_student(NetworkImpl& student, const HeadLayout& head,
                               const LabeledImages& data, int64_t batch_size);

/// Union accuracy of the teachers' ensemble: argmax over their concatenated logits.
double evaluate_ensemble(const std::vector<Teacher>& teachers, const LabeledImages& data,
                         int64_t batch_size);

/// The teachers' own union accuracy under each routing rule.
struct TeacherRoutingScores {
  double concatenated = 0;  ///< argmax over the concatenated logits (what plain KD imitates)
  double concatenated_routing = 0;  ///< share of images whose winning logit is of their task
  double calibrated = 0;  ///< P(task) from calibrated scores (route_by_teachers) x P(class|task)
  double calibrated_routing = 0;  ///< share of images the calibrated scores route to their task
  double confident_routing = 0;   ///< the same among the confidently routed images
  double confident_share = 0;     ///< share of images confidently routed
  double oracle = 0;              ///< each image scored by its own task's teacher (the ceiling)
};

/// Scores the teachers' ensemble on `data` under each rule. The calibration uses the images'
/// pixels alone (no labels), with `options`' score and prior.
TeacherRoutingScores evaluate_teacher_routing(const std::vector<Teacher>& teachers,
                                              const LabeledImages& data,
                                              const RoutingOptions& options, int64_t batch_size);

/// The same from the teachers' logits (per teacher [N,K_i]) on images labeled `labels` [N]
/// (data-set class ids, each in one of `tasks`).
TeacherRoutingScores teacher_routing_scores(const std::vector<at::Tensor>& logits,
                                            const at::Tensor& labels,
                                            const std::vector<TaskSpec>& tasks,
                                            const RoutingOptions& options);

/// Task index of every image of `labels` among `tasks` (-1 where none has the class).
at::Tensor true_tasks(const at::Tensor& labels, const std::vector<TaskSpec>& tasks);

}  // namespace amalgam

// Accuracy of teachers, students and the teachers' ensemble on labeled images.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "data/dataset.h"
#include "data/head_layout.h"
#include "models/network.h"
#include "models/predict.h"
#include "routing/teacher_scores.h"
#include "teachers/teacher.h"

namespace amalgam {

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

}  // namespace amalgam

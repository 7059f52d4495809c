// How well the teachers themselves say which task an image belongs to, on labeled images: the
// routing's evidence (the routing check) and the demo's and reproduce's teacher rows.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "data/task.h"
#include "routing/routing.h"
#include "teachers/teacher.h"

namespace amalgam {

/// Share of positions where `predicted` equals `labels` (both int64 [N]).
double fraction_equal(const at::Tensor& predicted, const at::Tensor& labels);

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

/// The teachers' outputs on the labeled images of any of their tasks.
struct TeacherLogits {
  std::vector<TaskSpec> tasks;     ///< the teachers' tasks, in teacher order
  LabeledImages images;            ///< the images of `data` in one of the tasks
  std::vector<at::Tensor> logits;  ///< per teacher [N,K_i], on the CPU
};

/// Runs every teacher on the images of `data` whose class is in one of their tasks.
TeacherLogits teacher_logits_on(const std::vector<Teacher>& teachers, const LabeledImages& data,
                                int64_t batch_size);

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

// What a run builds before it touches data: the student, its head over every teacher's classes
// and the objective's set-up. The run and --dry-run both start from this one plan.
#pragma once

#include <c10/core/Device.h>

#include <vector>

#include "data/head_layout.h"
#include "method/objective.h"
#include "models/network.h"
#include "teachers/teacher.h"
#include "training/amalgamate.h"

namespace amalgam {

/// A run's modules and shapes, built from its config and teachers alone.
struct RunPlan {
  HeadLayout head;           ///< which head slice answers which task, in teacher order
  ModelSpec student_spec;    ///< the student as built (a TorchScript student's tap and input)
  Network student;           ///< the student on the run's device, probed, trainable
  ObjectiveSetup objective;  ///< its shapes, head and multipliers; no transfer_logits yet
};

/// Builds the student (the context's ready-made one, or config.student for the teachers' input
/// and classes), checks it answers every class and gives a feature map, and fills the
/// objective's set-up. Throws Error naming --student when the student does not fit.
RunPlan plan_amalgamation(const std::vector<Teacher>& teachers, const AmalgamateConfig& config,
                          const Network& student_network, c10::Device device);

}  // namespace amalgam

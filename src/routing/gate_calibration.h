// The student's task gate, calibrated after training: the softmax mass of each task's slice of
// its head routes the images. Learnt from the confidently routed images only, it drifts from the
// routing it was taught (the demo's student sent 46.4% of images to task A where the teachers'
// routing sent 49.5%, and the truth is 50%); one shift per task brings its shares back.
// Label-free: only transfer images.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "data/head_layout.h"
#include "models/network.h"

namespace amalgam {

/// What the calibration did.
struct GateCalibration {
  bool applied = false;              ///< false when the student's head has no bias to shift
  std::vector<double> bias;          ///< per task: added to each logit of its slice
  std::vector<double> share_before;  ///< per task: share of the images the gate routed there
  std::vector<double> share_after;   ///< the same after the shift
};

/// The images calibrate_task_gate reads at most (evenly spaced): one scalar per task needs few;
/// 10,000 keep the pass to seconds on the demo's student.
constexpr int64_t kCalibrationImages = 10000;

/// Shifts the logits of each task slice of `student`'s head by one bias per task (the output
/// layer's bias, so an exported student carries it), chosen so the mean over `images` (at most
/// 10,000 of them, evenly spaced) of the slices' softmax mass is `shares`. The within-task
/// softmax, so every task's answer, is unchanged.
GateCalibration calibrate_task_gate(NetworkImpl& student, const at::Tensor& images,
                                    const HeadLayout& head, const std::vector<double>& shares);

}  // namespace amalgam

// Linear probes: how much of a task a feature space keeps, read by a linear classifier.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace amalgam {

/// Trains a linear classifier (softmax regression, full-batch Adam, inputs standardised with the
/// training set's statistics) on flattened `train_x` [N,...] with labels `train_y` in
/// 0..classes-1, and returns its accuracy on (`test_x`, `test_y`).
double linear_probe_accuracy(const at::Tensor& train_x, const at::Tensor& train_y,
                             const at::Tensor& test_x, const at::Tensor& test_y, int64_t classes,
                             int64_t steps = 300, uint64_t seed = 0);

}  // namespace amalgam

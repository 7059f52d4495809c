// FitNet-style hints: the student's feature map regressed onto each teacher's through an adapter.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace amalgam {

/// One 1x1 conv per teacher from the student's channels to the teacher's; the student's map is
/// resized onto the teacher's grid first (resize_feature_map), so any shapes fit.
class HintAdaptersImpl : public torch::nn::Module {
 public:
  HintAdaptersImpl(std::vector<int64_t> student_shape,
                   std::vector<std::vector<int64_t>> teacher_shapes);
  /// The student's feature map as a guess of teacher `teacher`'s [B,C_i,H_i,W_i].
  at::Tensor hint(size_t teacher, const at::Tensor& student_features);

 private:
  std::vector<std::vector<int64_t>> teacher_shapes_;
  torch::nn::ModuleList adapters_{nullptr};
};
TORCH_MODULE(HintAdapters);

}  // namespace amalgam

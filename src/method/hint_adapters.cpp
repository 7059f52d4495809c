#include "method/hint_adapters.h"

#include <torch/torch.h>

#include "core/error.h"
#include "method/common_feature_block.h"

namespace amalgam {

HintAdaptersImpl::HintAdaptersImpl(std::vector<int64_t> student_shape,
                                   std::vector<std::vector<int64_t>> teacher_shapes)
    : teacher_shapes_(std::move(teacher_shapes)) {
  AMALGAM_CHECK(student_shape.size() == 3, "hint adapters: student feature shape must be {C,H,W}");
  adapters_ = register_module("adapters", torch::nn::ModuleList());
  for (const auto& shape : teacher_shapes_) {
    AMALGAM_CHECK(shape.size() == 3, "hint adapters: teacher feature shape must be {C,H,W}");
    adapters_->push_back(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(student_shape[0], shape[0], 1)));
  }
}

at::Tensor HintAdaptersImpl::hint(size_t teacher, const at::Tensor& student_features) {
  AMALGAM_CHECK(teacher < teacher_shapes_.size(), "hint adapters: teacher index out of range");
  const auto& shape = teacher_shapes_[teacher];
  return adapters_[teacher]->as<torch::nn::Conv2d>()->forward(
      resize_feature_map(student_features, shape[1], shape[2]));
}

}  // namespace amalgam

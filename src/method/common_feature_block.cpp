#include "method/common_feature_block.h"

#include <torch/torch.h>

#include "core/error.h"

namespace amalgam {
namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel).padding(kernel / 2));
}

torch::nn::Sequential align(int64_t in, int64_t out) {
  return torch::nn::Sequential(conv(in, out, 1), torch::nn::ReLU(true));
}

void check_shape(const std::vector<int64_t>& shape, const std::string& what) {
  AMALGAM_CHECK(
      shape.size() == 3 && shape[0] > 0 && shape[1] > 0 && shape[2] > 0,
      "common feature block: " + what + " feature shape must be {C,H,W} with positive sizes");
}

}  // namespace

at::Tensor resize_feature_map(const at::Tensor& x, int64_t height, int64_t width) {
  if (x.size(2) == height && x.size(3) == width) return x;
  if (x.size(2) >= height && x.size(3) >= width)
    return torch::adaptive_avg_pool2d(x, {height, width});
  return torch::nn::functional::interpolate(x, torch::nn::functional::InterpolateFuncOptions()
                                                   .size(std::vector<int64_t>{height, width})
                                                   .mode(torch::kBilinear)
                                                   .align_corners(false));
}

ResidualUnitImpl::ResidualUnitImpl(int64_t in, int64_t out) {
  body_ = register_module(
      "body", torch::nn::Sequential(conv(in, out, 3), torch::nn::ReLU(true), conv(out, out, 3)));
  if (in != out) shortcut_ = register_module("shortcut", torch::nn::Sequential(conv(in, out, 1)));
}

at::Tensor ResidualUnitImpl::forward(const at::Tensor& x) {
  return torch::relu(body_->forward(x) + (shortcut_ ? shortcut_->forward(x) : x));
}

CommonFeatureBlockImpl::CommonFeatureBlockImpl(CommonFeatureBlockOptions options)
    : options_(std::move(options)) {
  const int64_t h = options_.common_channels;
  AMALGAM_CHECK(h > 0, "--common-channels: must be > 0");
  AMALGAM_CHECK(options_.extractor_blocks > 0, "--extractor-blocks: must be > 0");
  AMALGAM_CHECK(!options_.teacher_shapes.empty(), "common feature block: no teacher");
  check_shape(options_.student_shape, "student");
  teacher_align_ = register_module("teacher_align", torch::nn::ModuleList());
  decoders_ = register_module("decoders", torch::nn::ModuleList());
  for (const auto& shape : options_.teacher_shapes) {
    check_shape(shape, "teacher");
    teacher_align_->push_back(align(shape[0], 2 * h));
    decoders_->push_back(
        torch::nn::Sequential(conv(h, h, 3), torch::nn::ReLU(true), conv(h, shape[0], 1)));
  }
  student_align_ = register_module("student_align", align(options_.student_shape[0], 2 * h));
  torch::nn::Sequential extractor(ResidualUnit(2 * h, h));
  for (int64_t b = 1; b < options_.extractor_blocks; ++b) extractor->push_back(ResidualUnit(h, h));
  extractor_ = register_module("extractor", extractor);
}

std::vector<at::Tensor> CommonFeatureBlockImpl::common_space_parameters() {
  std::vector<at::Tensor> params = teacher_align_->parameters();
  for (const auto& p : student_align_->parameters()) params.push_back(p);
  for (const auto& p : extractor_->parameters()) params.push_back(p);
  return params;
}

std::vector<at::Tensor> CommonFeatureBlockImpl::decoder_parameters() {
  return decoders_->parameters();
}

at::Tensor CommonFeatureBlockImpl::student_common(const at::Tensor& student_features) {
  return extractor_->forward(student_align_->forward(student_features));
}

// Each teacher-side layer runs on the smaller of the teacher's and the student's grids: a
// torchvision teacher at 32x32 ends on a 1x1 map of 512-1280 channels, and holding those
// channels at the student's 8x8 grid made a CFL step 11x slower than a KD step (42 vs 480
// images/s; the 42 MB buffers of each batch went through mmap and page faults).
namespace {
bool smaller_grid(int64_t height, int64_t width, const std::vector<int64_t>& student_shape) {
  return height * width < student_shape[1] * student_shape[2];
}
}  // namespace

at::Tensor CommonFeatureBlockImpl::teacher_common(size_t teacher, const at::Tensor& features) {
  AMALGAM_CHECK(teacher < num_teachers(), "common feature block: teacher index out of range");
  const int64_t height = options_.student_shape[1], width = options_.student_shape[2];
  auto align = teacher_align_[teacher]->as<torch::nn::Sequential>();
  const at::Tensor aligned =
      smaller_grid(features.size(2), features.size(3), options_.student_shape)
          ? resize_feature_map(align->forward(features), height, width)
          : align->forward(resize_feature_map(features, height, width));
  return extractor_->forward(aligned);
}

at::Tensor CommonFeatureBlockImpl::reconstruct(size_t teacher, const at::Tensor& common) {
  AMALGAM_CHECK(teacher < num_teachers(), "common feature block: teacher index out of range");
  const auto& shape = options_.teacher_shapes[teacher];
  auto decoder = decoders_[teacher]->as<torch::nn::Sequential>();
  if (smaller_grid(shape[1], shape[2], options_.student_shape))
    return decoder->forward(resize_feature_map(common, shape[1], shape[2]));
  return resize_feature_map(decoder->forward(common), shape[1], shape[2]);
}

}  // namespace amalgam

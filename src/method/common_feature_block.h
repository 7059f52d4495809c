// The common feature space of CFL: align layers, a shared residual extractor, and per-teacher
// decoders.
#pragma once

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace amalgam {

/// Options of a CommonFeatureBlock.
struct CommonFeatureBlockOptions {
  std::vector<std::vector<int64_t>> teacher_shapes;  ///< each teacher's feature map {C,H,W}
  std::vector<int64_t> student_shape;                ///< the student's feature map {C,H,W}
  int64_t common_channels = 32;                      ///< h: channels of the common space
  int64_t extractor_blocks = 2;  ///< residual blocks in the shared extractor (2h->h, then h->h)
};

/// A residual unit without normalisation: relu(conv3x3-relu-conv3x3(x) + shortcut(x)).
/// No BatchNorm on purpose: it would normalise the student's and each teacher's batch separately
/// and so erase the very mean shift the MMD is there to remove.
class ResidualUnitImpl : public torch::nn::Module {
 public:
  ResidualUnitImpl(int64_t in, int64_t out);
  /// The unit's output.
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Sequential body_{nullptr};
  torch::nn::Sequential shortcut_{nullptr};
};
TORCH_MODULE(ResidualUnit);

/// Maps the student's and every teacher's feature map into one common space of h channels on
/// the student's spatial grid. A teacher whose feature map has another spatial size is resized
/// onto that grid (adaptive average pooling when larger, bilinear interpolation otherwise); its
/// decoder's output is resized back to the teacher's own size, so the reconstruction target is
/// always the untouched teacher feature. Teacher-side layers run on the smaller grid: a larger
/// map is pooled before its align layer and decoded on the student's grid; a smaller one is
/// aligned before it is upsampled, and decoded after the common map is resized onto its grid.
class CommonFeatureBlockImpl : public torch::nn::Module {
 public:
  explicit CommonFeatureBlockImpl(CommonFeatureBlockOptions options);
  /// h_s: student feature map -> common space [B,h,Hs,Ws].
  at::Tensor student_common(const at::Tensor& student_features);
  /// h_i: teacher i's feature map -> common space [B,h,Hs,Ws].
  at::Tensor teacher_common(size_t teacher, const at::Tensor& teacher_features);
  /// dec_i(h_i): rebuilds teacher i's feature map [B,C_i,H_i,W_i] from its common feature.
  at::Tensor reconstruct(size_t teacher, const at::Tensor& common);
  /// Parameters of the align layers and the shared extractor: the map into the common space.
  std::vector<at::Tensor> common_space_parameters();
  /// Parameters of the per-teacher decoders.
  std::vector<at::Tensor> decoder_parameters();
  /// Number of teachers.
  size_t num_teachers() const { return options_.teacher_shapes.size(); }
  /// The options it was built with.
  const CommonFeatureBlockOptions& options() const { return options_; }

 private:
  CommonFeatureBlockOptions options_;
  torch::nn::ModuleList teacher_align_{nullptr};
  torch::nn::Sequential student_align_{nullptr};
  torch::nn::Sequential extractor_{nullptr};
  torch::nn::ModuleList decoders_{nullptr};
};
TORCH_MODULE(CommonFeatureBlock);

/// Resizes a feature map to {height,width}: identity, adaptive average pooling when shrinking
/// both sides, bilinear interpolation otherwise.
at::Tensor resize_feature_map(const at::Tensor& x, int64_t height, int64_t width);

}  // namespace amalgam

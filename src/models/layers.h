// Building blocks shared by the model zoo.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <string>

#include "models/network.h"

namespace amalgam {

/// Options of every zoo network: the architecture family and its size.
struct ModelSpec {
  std::string arch = "resnet";  ///< resnet | vgg | mobilenetv2 | torchscript (a user's file)
  std::string layer;            ///< torchscript: submodule whose output is the feature map
  int64_t width = 16;           ///< channels of the first stage; each later stage doubles it
  int64_t depth = 1;            ///< blocks (resnet, mobilenetv2) or convs (vgg) per stage
  int64_t stages = 3;           ///< stages; every stage after the first halves the resolution
  int64_t expansion = 4;        ///< mobilenetv2 inverted-residual expansion factor
  int64_t num_classes = 10;     ///< logits
  InputSpec input;              ///< input geometry and normalisation
};

/// Activation after a convolution.
enum class Activation { kNone, kReLU, kReLU6 };

/// Stacks every data-parallel rank's per-channel statistics [k] into [ranks,k], differentiably
/// (synchronised BatchNorm); empty: the batch is this process's alone.
using StatisticsGather = std::function<at::Tensor(const at::Tensor&)>;

/// Conv (no bias, "same" padding) + BatchNorm + activation.
class ConvBNImpl : public torch::nn::Module {
 public:
  ConvBNImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, Activation activation,
             int64_t groups = 1);
  /// activation(bn(conv(x)))
  at::Tensor forward(const at::Tensor& x);
  /// In training, normalise with the moments of the whole batch whose shards `gather` collects
  /// (empty: the usual per-process BatchNorm).
  void set_statistics_gather(StatisticsGather gather) { statistics_gather_ = std::move(gather); }
  /// The activation after BatchNorm.
  Activation activation() const { return activation_; }

 private:
  at::Tensor synchronised_batch_norm(const at::Tensor& x);

  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
  Activation activation_;
  StatisticsGather statistics_gather_;
};
TORCH_MODULE(ConvBN);

/// Gives every ConvBN inside `module` the statistics gather `gather` (empty: back to per-process
/// BatchNorm); returns how many there are.
int64_t set_statistics_gather(torch::nn::Module& module, const StatisticsGather& gather);

/// The zoo's common frame: normalise, run the backbone, average-pool, classify.
class ZooNetworkImpl : public NetworkImpl {
 public:
  explicit ZooNetworkImpl(ModelSpec spec);
  ModelOutput forward(const at::Tensor& images) override;
  std::vector<at::Tensor> head_parameters() override;
  const InputSpec& input() const override { return spec_.input; }
  /// The options this network was built with.
  const ModelSpec& spec() const { return spec_; }

 protected:
  /// Registers the backbone (normalised images -> last stage's feature map) and a linear head
  /// over its `feature_channels` output channels; every zoo constructor ends with this.
  void set_backbone(torch::nn::Sequential backbone, int64_t feature_channels);

 private:
  ModelSpec spec_;
  torch::nn::Sequential backbone_{nullptr};
  at::Tensor mean_;
  at::Tensor std_;
  torch::nn::Linear head_{nullptr};
};

/// Channels of stage `stage` (0-based) of a zoo network.
int64_t stage_channels(const ModelSpec& spec, int64_t stage);

}  // namespace amalgam

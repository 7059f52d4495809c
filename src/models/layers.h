// Building blocks shared by the model zoo.
#pragma once

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

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

/// Conv (no bias, "same" padding) + BatchNorm + activation.
class ConvBNImpl : public torch::nn::Module {
 public:
  ConvBNImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, Activation activation,
             int64_t groups = 1);
  /// activation(bn(conv(x)))
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
  Activation activation_;
};
TORCH_MODULE(ConvBN);

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

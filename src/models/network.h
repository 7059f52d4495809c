// The one model interface: images in, (feature map, logits) out. Teachers and students, built by
// the zoo or (later) loaded from files, all go through it.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace amalgam {

/// Input conventions of a network: geometry and the normalisation it expects.
struct InputSpec {
  int64_t channels = 1;             ///< image channels (1 grey, 3 RGB)
  int64_t height = 28;              ///< image height in pixels
  int64_t width = 28;               ///< image width in pixels
  std::vector<double> mean{0.286};  ///< per-channel mean subtracted from [0,1] pixels
  std::vector<double> std{0.353};   ///< per-channel std the centred pixels are divided by
};

/// Images per batch of every inference pass (teacher caching, evaluation, prediction): on two
/// CPU cores the demo's teachers ran 1.6x faster at 128 images of 28x28 than at 256.
constexpr int64_t kInferenceBatch = 128;

/// What every network returns.
struct ModelOutput {
  at::Tensor features;  ///< the last convolutional stage's feature map [B,C,H,W]
  at::Tensor logits;    ///< class scores [B,K]
};

/// Base of every network amalgam trains or runs. Inputs are raw images in [0,1]; the network
/// applies its own normalisation, so teachers with different conventions see the same batch.
class NetworkImpl : public torch::nn::Module {
 public:
  /// images: float [B,C,H,W] in [0,1].
  virtual ModelOutput forward(const at::Tensor& images) = 0;
  /// The classifier head's parameters (trained with the head learning rate).
  virtual std::vector<at::Tensor> head_parameters() = 0;
  /// Every parameter outside the head.
  std::vector<at::Tensor> backbone_parameters();
  /// The input conventions.
  virtual const InputSpec& input() const = 0;
};

/// A group of parameters sharing one learning-rate multiplier.
struct ParamGroup {
  std::vector<at::Tensor> params;  ///< the parameters
  double lr_mult = 1.0;            ///< lr = base lr * lr_mult
};

/// Shared handle to any network.
using Network = std::shared_ptr<NetworkImpl>;

/// `images` [B,C,H,W] in [0,1], of any size and 1 or 3 channels, as a network taking `input`
/// expects them: grey repeated to RGB or RGB to grey (the image decoder's luminance weights), then
/// resized bilinearly with antialiasing (torchvision's Resize). Returns `images` itself when they
/// already fit, so networks that agree on geometry pay nothing.
at::Tensor conform_input(const at::Tensor& images, const InputSpec& input);

/// The feature map shape {C,H,W} the network produces for its declared input size; empty for a
/// network that gives logits only (a TorchScript file loaded without :LAYER).
std::vector<int64_t> feature_shape(NetworkImpl& network);

/// The device of a module's first parameter (CPU for a module without parameters).
c10::Device device_of(const torch::nn::Module& module);

/// Number of scalar parameters of a module.
int64_t count_parameters(const torch::nn::Module& module);

/// Stores every 4-D parameter and buffer of `module` in channels-last (NHWC) layout, in place.
void to_channels_last(torch::nn::Module& module);

/// Puts every 4-D parameter and buffer of `module` in `format` (to_channels_last, or back).
void to_memory_format(torch::nn::Module& module, at::MemoryFormat format);

/// Freezes a network for use as a teacher: eval mode, no parameter needs a gradient.
void freeze(NetworkImpl& network);

}  // namespace amalgam

// Networks loaded from TorchScript files (torch.jit.script or torch.jit.trace output) behind the
// one model interface.
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "models/feature_layout.h"
#include "models/network.h"

namespace torch::jit {
struct Module;
}  // namespace torch::jit

namespace amalgam {

/// A TorchScript module whose forward returns logits; the feature map is the output of the
/// submodule at `layer`, taken by a rewritten copy of forward (see layer_tap.h) and read in its
/// layout (feature_layout.h): `layer` is "PATH" or "PATH@LAYOUT" (e.g. "features@nhwc"), the
/// layout read from the output's shape on the first forward when not given. With an empty layer
/// only logits are available (features stay undefined).
class TorchScriptNetworkImpl : public NetworkImpl {
 public:
  /// Wraps `module` (already on its device). `source` names the file in messages.
  TorchScriptNetworkImpl(torch::jit::Module module, std::string layer, InputSpec input,
                         std::string source);
  ~TorchScriptNetworkImpl() override;
  ModelOutput forward(const at::Tensor& images) override;
  /// A user's module has no declared head: every parameter trains at the base learning rate.
  std::vector<at::Tensor> head_parameters() override { return {}; }
  const InputSpec& input() const override { return input_; }
  void train(bool on = true) override;
  /// The wrapped module (its parameters are this network's parameters).
  torch::jit::Module& module();
  /// The tapped layer's module path ("" when none).
  const std::string& layer() const { return layer_; }
  /// The layer as it was given: "PATH", or "PATH@LAYOUT" when a layout was declared.
  std::string tap() const {
    return declared_layout_ == FeatureLayout::kAuto
               ? layer_
               : layer_ + "@" + feature_layout_name(declared_layout_);
  }
  /// The layout its output is read in (kAuto until the first forward resolves it).
  FeatureLayout layout() const { return layout_; }

 private:
  std::unique_ptr<torch::jit::Module> module_;
  std::string layer_;
  FeatureLayout declared_layout_ = FeatureLayout::kAuto;
  FeatureLayout layout_ = FeatureLayout::kAuto;
  InputSpec input_;
  std::string source_;
  void* tapped_forward_ = nullptr;  // torch::jit::Function*, owned by the module's unit
  at::Tensor mean_;
  at::Tensor std_;
};

/// Loads a TorchScript file onto `device`; throws Error naming `path` when it is not one, or when
/// `layer` is not a submodule forward calls once (the message lists the module's paths).
std::shared_ptr<TorchScriptNetworkImpl> load_torchscript_network(const std::string& path,
                                                                 const std::string& layer,
                                                                 const InputSpec& input,
                                                                 c10::Device device);

/// One line per submodule of the TorchScript file at `path`: its path, type and output shape for
/// a batch of one `input`-shaped image (or why it cannot be tapped), then the output's shape.
std::string inspect_torchscript(const std::string& path, const InputSpec& input);

/// Whether `path` is a TorchScript archive (a zip holding code/ and data.pkl).
bool is_torchscript_file(const std::string& path);

}  // namespace amalgam

// Frozen networks from AOTInductor packages (`.pt2` files written by
// torch._inductor.aoti_compile_and_package) behind the one model interface.
//
// A package is compiled code with no layers to tap, so its outputs carry the convention:
//   - (features, logits): the exported module returns both; features in any layout
//     feature_layout.h reads (nchw, nhwc, tokens, tokens+cls, vector), logits [B,K];
//   - logits alone: the teacher can be scored and used by logit-only methods, not amalgamated
//     with a feature term.
// Inputs are the normalised images the model was trained on (amalgam applies mean/std from the
// sidecar or options first, as for TorchScript files).
#pragma once

#include <c10/core/Device.h>

#include <memory>
#include <string>

#include "models/feature_layout.h"
#include "models/network.h"

namespace torch::inductor {
class AOTIModelPackageLoader;
}  // namespace torch::inductor

namespace amalgam {

/// An AOTInductor package run as a frozen network. It has no trainable parameters: it can be a
/// teacher, never a student.
class AotiNetworkImpl : public NetworkImpl {
 public:
  /// Loads the package at `path` for `device` (a package compiled for the CPU runs on the CPU
  /// whatever `device` is; outputs come back on the input's device). `layout` is how its first
  /// output is read when it returns (features, logits); kAuto reads it from the shape.
  AotiNetworkImpl(const std::string& path, InputSpec input, FeatureLayout layout,
                  c10::Device device);
  ~AotiNetworkImpl() override;
  ModelOutput forward(const at::Tensor& images) override;
  /// No head: a package is frozen.
  std::vector<at::Tensor> head_parameters() override { return {}; }
  const InputSpec& input() const override { return input_; }
  /// The device the package was compiled for ("cpu" or "cuda").
  const std::string& package_device() const { return package_device_; }
  /// The layout the features are read in (kAuto until the first forward resolves it).
  FeatureLayout layout() const { return layout_; }

 private:
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader_;
  std::string path_;
  std::string package_device_;
  c10::Device run_device_{c10::kCPU};
  InputSpec input_;
  FeatureLayout declared_layout_ = FeatureLayout::kAuto;
  FeatureLayout layout_ = FeatureLayout::kAuto;
};

/// Whether `path` names an AOTInductor package (a zip archive whose name ends in .pt2).
bool is_aoti_package(const std::string& path);

/// Loads the package at `path` (see AotiNetworkImpl); throws Error naming `path` when it is not a
/// loadable AOTInductor package.
std::shared_ptr<AotiNetworkImpl> load_aoti_network(const std::string& path, const InputSpec& input,
                                                   FeatureLayout layout, c10::Device device);

/// What `amalgam inspect` shows for a package: its device, the input it is run with, and each
/// output's shape (with the feature layout read from the first of two).
std::string inspect_aoti(const std::string& path, const InputSpec& input);

}  // namespace amalgam

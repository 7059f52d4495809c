// Layer taps for TorchScript modules: LibTorch has no forward hooks, so the module's forward graph
// is copied and rewritten to also return the outputs of chosen submodules.
#pragma once

#include <string>
#include <vector>

namespace torch::jit {
struct Function;
struct Module;
}  // namespace torch::jit

namespace amalgam {

/// A module's forward rewritten to return (tap_0, ..., tap_{n-1}, original output).
struct LayerTaps {
  torch::jit::Function* function = nullptr;  ///< call with (module._ivalue(), input)
  std::vector<std::string> tapped;           ///< paths tapped, in output order
  std::vector<std::string> untappable;       ///< "path: reason" for paths that cannot be tapped
};

/// Rewrites `module`'s forward to also return the output of each submodule in `paths` ("layer4",
/// "features.7"). A path can be tapped when forward calls that submodule exactly once outside
/// control flow; calls on the way to it (its parents, helper methods) are inlined.
/// The rewritten function lives in the module's compilation unit; the module is unchanged.
LayerTaps tap_layers(const torch::jit::Module& module, const std::vector<std::string>& paths);

/// Every submodule path of `module` in definition order ("" for the root is left out).
std::vector<std::string> submodule_paths(const torch::jit::Module& module);

}  // namespace amalgam

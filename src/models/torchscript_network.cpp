#include "models/torchscript_network.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "models/layer_tap.h"

namespace amalgam {
namespace {

std::string shape_text(const at::IValue& value) {
  if (!value.isTensor()) return value.tagKind();
  std::string text = "[";
  for (int64_t d : value.toTensor().sizes())
    text += (text.size() > 1 ? ", " : "") + std::to_string(d);
  return text + "]";
}

// nn::Module names may not contain dots; keep the path readable and unique.
std::string flat_name(const std::string& path,
                      const torch::OrderedDict<std::string, at::Tensor>& taken) {
  std::string name = path;
  for (char& c : name)
    if (c == '.') c = '_';
  while (taken.contains(name)) name += "_";
  return name;
}

torch::jit::Module load_module(const std::string& path, c10::Device device) {
  AMALGAM_CHECK(std::filesystem::is_regular_file(path), path + ": no such model file");
  AMALGAM_CHECK(is_torchscript_file(path),
                path +
                    ": not a TorchScript file (save it with torch.jit.save of a scripted or traced "
                    "module)");
  try {
    return torch::jit::load(path, device);
  } catch (const c10::Error& e) {
    const std::string what = e.what_without_backtrace();
    // torch.save writes the same zip archive as TorchScript, without the code TorchScript needs.
    if (what.find("constants.pkl") != std::string::npos)
      throw Error(path +
                  ": written by torch.save (a state_dict or pickled module), not TorchScript; save "
                  "it with torch.jit.script(model.eval()).save(PATH) or torch.jit.trace");
    throw Error(path + ": not a loadable TorchScript module: " + first_line(what));
  }
}

std::string list_paths(const std::vector<std::string>& paths) {
  std::string text;
  for (const auto& p : paths) text += (text.empty() ? "" : ", ") + p;
  return text.empty() ? "(none: the module has no submodules)" : text;
}

// "  -> nhwc, features [C, H, W]" for a tappable output, or why no layout reads it.
std::string layout_text(const at::IValue& value, const InputSpec& input) {
  if (!value.isTensor()) return "";
  const at::Tensor x = value.toTensor();
  try {
    const FeatureLayout layout = resolve_feature_layout(x.sizes().vec(), input.height, input.width,
                                                        FeatureLayout::kAuto, "");
    const at::Tensor map = to_feature_map(x, layout);
    return std::string("  -> ") + feature_layout_name(layout) + ", features [" +
           std::to_string(map.size(1)) + ", " + std::to_string(map.size(2)) + ", " +
           std::to_string(map.size(3)) + "]";
  } catch (const Error&) {
    return "  -> layout unclear: tap it as LAYER@LAYOUT (nchw, nhwc, tokens, tokens+cls, vector)";
  }
}

}  // namespace

bool is_torchscript_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

TorchScriptNetworkImpl::TorchScriptNetworkImpl(torch::jit::Module module, std::string layer,
                                               InputSpec input, std::string source)
    : module_(std::make_unique<torch::jit::Module>(std::move(module))),
      layer_(layer.substr(0, layer.find('@'))),
      input_(std::move(input)),
      source_(std::move(source)) {
  if (layer.find('@') != std::string::npos)
    declared_layout_ =
        parse_feature_layout(layer.substr(layer.find('@') + 1), source_ + ":" + layer);
  AMALGAM_CHECK(static_cast<int64_t>(input_.mean.size()) == input_.channels &&
                    static_cast<int64_t>(input_.std.size()) == input_.channels,
                source_ + ": mean and std need one value per input channel (" +
                    std::to_string(input_.channels) + ")");
  for (double s : input_.std) AMALGAM_CHECK(s > 0, source_ + ": std values must be > 0");
  if (!layer_.empty()) {
    const LayerTaps taps = tap_layers(*module_, {layer_});
    AMALGAM_CHECK(taps.untappable.empty(),
                  source_ + ": cannot take features from '" + layer_ + "' (" +
                      (taps.untappable.empty() ? "" : taps.untappable.front()) +
                      "); module paths: " + list_paths(submodule_paths(*module_)));
    tapped_forward_ = taps.function;
  }
  c10::Device device(c10::kCPU);
  for (const auto& p : module_->parameters()) device = p.device();
  const auto options = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  // Registered first, so a module with tensors of the same names (an amalgam export) gets theirs
  // renamed, not ours.
  mean_ = register_buffer("input_mean",
                          torch::tensor(input_.mean, options).view({1, input_.channels, 1, 1}));
  std_ = register_buffer("input_std",
                         torch::tensor(input_.std, options).view({1, input_.channels, 1, 1}));
  // The module's tensors become this network's, so optimisers, device moves and checkpoints of
  // the wrapper act on the module itself.
  for (const auto& p : module_->named_parameters(true))
    register_parameter(flat_name(p.name, named_parameters()), p.value);
  for (const auto& b : module_->named_buffers(true))
    register_buffer(flat_name(b.name, named_buffers()), b.value);
}

TorchScriptNetworkImpl::~TorchScriptNetworkImpl() = default;

torch::jit::Module& TorchScriptNetworkImpl::module() {
  return *module_;
}

void TorchScriptNetworkImpl::train(bool on) {
  NetworkImpl::train(on);
  module_->train(on);
}

ModelOutput TorchScriptNetworkImpl::forward(const at::Tensor& images) {
  const at::Tensor x = (conform_input(images, input_) - mean_) / std_;
  ModelOutput out;
  at::IValue logits;
  if (tapped_forward_ == nullptr) {
    logits = module_->forward({x});
  } else {
    auto& fn = *static_cast<torch::jit::Function*>(tapped_forward_);
    const auto result = fn({module_->_ivalue(), x}).toTuple();
    const at::IValue& tap = result->elements()[0];
    AMALGAM_CHECK(tap.isTensor(), source_ + ": layer '" + layer_ + "' returns " + shape_text(tap) +
                                      ", not a tensor of features");
    if (layout_ == FeatureLayout::kAuto)
      layout_ = resolve_feature_layout(tap.toTensor().sizes().vec(), input_.height, input_.width,
                                       declared_layout_, source_ + ": layer '" + layer_ + "'");
    out.features = to_feature_map(tap.toTensor(), layout_);
    logits = result->elements()[1];
  }
  AMALGAM_CHECK(logits.isTensor() && logits.toTensor().dim() == 2,
                source_ + ": forward returns " + shape_text(logits) + ", not logits [B,K]");
  out.logits = logits.toTensor();
  return out;
}

std::shared_ptr<TorchScriptNetworkImpl> load_torchscript_network(const std::string& path,
                                                                 const std::string& layer,
                                                                 const InputSpec& input,
                                                                 c10::Device device) {
  return std::make_shared<TorchScriptNetworkImpl>(load_module(path, device), layer, input, path);
}

std::string inspect_torchscript(const std::string& path, const InputSpec& input) {
  torch::jit::Module module = load_module(path, at::kCPU);
  module.eval();
  const std::vector<std::string> paths = submodule_paths(module);
  const LayerTaps taps = tap_layers(module, paths);
  std::map<std::string, std::string> shapes;
  for (const auto& entry : taps.untappable) {
    const auto colon = entry.find(':');
    shapes[entry.substr(0, colon)] = "not tappable:" + entry.substr(colon + 1);
  }
  torch::NoGradGuard no_grad;
  const at::Tensor x = torch::zeros({1, input.channels, input.height, input.width});
  at::IValue result;
  try {
    result = (*taps.function)({module._ivalue(), x});
  } catch (const std::exception& e) {  // LibTorch's errors and the TorchScript interpreter's
    throw Error(path + ": forward fails on a " + std::to_string(input.channels) + "x" +
                std::to_string(input.height) + "x" + std::to_string(input.width) +
                " input (check --input-size and --channels): " + first_line(e.what()));
  }
  const auto& items = result.toTuple()->elements();
  for (size_t i = 0; i < taps.tapped.size(); ++i)
    shapes[taps.tapped[i]] = shape_text(items[i]) + layout_text(items[i], input);

  std::ostringstream out;
  out << path << " (" << module.type()->name()->name() << "), input [1, " << input.channels << ", "
      << input.height << ", " << input.width << "]\n";
  std::map<std::string, std::string> type_of;
  for (const auto& item : module.named_modules())
    type_of[item.name] = item.value.type()->name() ? item.value.type()->name()->name() : "?";
  for (const auto& p : paths) {
    const auto depth = std::count(p.begin(), p.end(), '.');
    out << std::string(2 * (depth + 1), ' ') << p << " (" << type_of[p] << ")  " << shapes[p]
        << "\n";
  }
  out << "  output  " << shape_text(items.back()) << "\n";
  return out.str();
}

}  // namespace amalgam

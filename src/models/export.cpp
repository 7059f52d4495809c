#include "models/export.h"

#include <torch/script.h>
#include <torch/torch.h>

#include <filesystem>
#include <iomanip>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/fault_injection.h"
#include "models/checkpoint.h"
#include "models/layers.h"
#include "models/mobilenetv2.h"
#include "models/resnet.h"
#include "models/torchscript_network.h"

namespace amalgam {
namespace {

using torch::jit::Module;

// Builds TorchScript modules that mirror a zoo network's module tree: every submodule keeps its
// name, parameters and buffers, and gets a forward written in TorchScript. BatchNorm reads
// `self.training`, so Python's .train() / .eval() act as on torchvision models. Submodules are
// called as self.x.forward(...): source defined from C++ sees them as plain objects, not modules.
class Scripter {
 public:
  Module module(const std::string& kind) {
    Module m(c10::QualifiedName("__torch__.amalgam." + kind + std::to_string(next_++)), unit_,
             /*shouldMangle=*/false);
    if (!m.type()->hasAttribute("training"))
      m.register_attribute("training", c10::BoolType::get(), true);
    return m;
  }

  // A copy of `module` as TorchScript: its own forward for the zoo's layers.
  Module script(const std::shared_ptr<torch::nn::Module>& module) {
    Module m = module_for(*module);
    for (const auto& p : module->named_parameters(/*recurse=*/false))
      m.register_parameter(p.key(), p.value().detach().to(at::kCPU).clone().requires_grad_(true),
                           false);
    for (const auto& b : module->named_buffers(/*recurse=*/false))
      m.register_buffer(b.key(), b.value().detach().to(at::kCPU).clone());
    for (const auto& child : module->named_children())
      m.register_module(child.key(), script(child.value()));
    m.define(source_of(*module));
    return m;
  }

 private:
  Module module_for(const torch::nn::Module& module) {
    if (module.as<ConvBNImpl>()) return this->module("ConvBN");
    if (module.as<BasicBlockImpl>()) return this->module("BasicBlock");
    if (module.as<InvertedResidualImpl>()) return this->module("InvertedResidual");
    if (module.as<torch::nn::SequentialImpl>()) return this->module("Sequential");
    if (module.as<torch::nn::Conv2dImpl>()) return this->module("Conv2d");
    if (module.as<torch::nn::BatchNorm2dImpl>()) return this->module("BatchNorm2d");
    if (module.as<torch::nn::MaxPool2dImpl>()) return this->module("MaxPool2d");
    if (module.as<torch::nn::LinearImpl>()) return this->module("Linear");
    if (module.as<ZooNetworkImpl>()) return this->module("Student");
    throw Error("export: no TorchScript form for module " + module.name());
  }

  static std::string pair(int64_t v) {
    return "[" + std::to_string(v) + ", " + std::to_string(v) + "]";
  }

  static std::string number(double v) {
    std::ostringstream out;
    out << std::setprecision(17) << v;
    const std::string text = out.str();
    return text.find_first_of(".e") == std::string::npos ? text + ".0" : text;
  }

  static std::string source_of(torch::nn::Module& module) {
    const std::string def = "def forward(self, x: Tensor) -> Tensor:\n";
    if (const auto* conv_bn = module.as<ConvBNImpl>()) {
      const std::string y = "self.bn.forward(self.conv.forward(x))";
      switch (conv_bn->activation()) {
        case Activation::kReLU:
          return def + "    return torch.relu(" + y + ")\n";
        case Activation::kReLU6:
          return def + "    return torch.hardtanh(" + y + ", 0.0, 6.0)\n";
        case Activation::kNone:
          return def + "    return " + y + "\n";
      }
    }
    if (module.as<BasicBlockImpl>()) {
      bool projected = false;
      for (const auto& child : module.named_children()) projected |= child.key() == "shortcut";
      return def + "    identity = " + (projected ? "self.shortcut.forward(x)" : "x") +
             "\n    return torch.relu(self.conv2.forward(self.conv1.forward(x)) + identity)\n";
    }
    if (const auto* block = module.as<InvertedResidualImpl>())
      return def + "    return self.body.forward(x)" + (block->residual() ? " + x" : "") + "\n";
    if (module.as<torch::nn::SequentialImpl>()) {
      std::string body = def;
      for (const auto& child : module.named_children())
        body += "    x = getattr(self, \"" + child.key() + "\").forward(x)\n";
      return body + "    return x\n";
    }
    if (const auto* conv = module.as<torch::nn::Conv2dImpl>()) {
      const auto& o = conv->options;
      const int64_t kernel = (*o.kernel_size())[0];
      return def + "    return torch.conv2d(x, self.weight, " + (o.bias() ? "self.bias" : "None") +
             ", " + pair((*o.stride())[0]) + ", " + pair(kernel / 2) + ", " +
             pair((*o.dilation())[0]) + ", " + std::to_string(o.groups()) + ")\n";
    }
    if (const auto* bn = module.as<torch::nn::BatchNorm2dImpl>()) {
      const auto& o = bn->options;
      return def +
             "    if self.training:\n"
             "        self.num_batches_tracked.add_(1)\n"
             "    return torch.batch_norm(x, self.weight, self.bias, self.running_mean, "
             "self.running_var, self.training, " +
             number(o.momentum().value_or(0.1)) + ", " + number(o.eps()) + ", True)\n";
    }
    if (const auto* pool = module.as<torch::nn::MaxPool2dImpl>()) {
      const auto& o = pool->options;
      return def + "    return torch.max_pool2d(x, " + pair((*o.kernel_size())[0]) + ", " +
             pair((*o.stride())[0]) + ", " + pair((*o.padding())[0]) + ", " +
             pair((*o.dilation())[0]) + ", " + (o.ceil_mode() ? "True" : "False") + ")\n";
    }
    if (module.as<torch::nn::LinearImpl>())
      return def + "    return torch.linear(x, self.weight, self.bias)\n";
    // The zoo's frame (layers.cpp, ZooNetworkImpl::forward): normalise, body, pool, head.
    return "def features(self, images: Tensor) -> Tensor:\n"
           "    return self.body.forward((images - self.input_mean) / self.input_std)\n"
           "def forward(self, images: Tensor) -> Tensor:\n"
           "    pooled = torch.adaptive_avg_pool2d(self.features(images), [1, 1])\n"
           "    return self.head.forward(torch.flatten(pooled, 1))\n";
  }

  std::shared_ptr<torch::jit::CompilationUnit> unit_ =
      std::make_shared<torch::jit::CompilationUnit>();
  int next_ = 0;
};

// A user's TorchScript student: its own (trained) module tree under "net", behind the
// normalisation amalgam applied.
Module wrap_user_module(Scripter& scripter, TorchScriptNetworkImpl& network) {
  Module root = scripter.module("Student");
  Module net = network.module().clone();
  net.to(at::kCPU);
  root.register_module("net", net);
  const InputSpec& in = network.input();
  const auto column = [&](const std::vector<double>& v) {
    return torch::tensor(v, torch::kFloat32).view({1, in.channels, 1, 1});
  };
  root.register_buffer("input_mean", column(in.mean));
  root.register_buffer("input_std", column(in.std));
  root.define(
      "def forward(self, images: Tensor) -> Tensor:\n"
      "    return self.net.forward((images - self.input_mean) / self.input_std)\n");
  return root;
}

}  // namespace

void export_torchscript(NetworkImpl& network, const std::string& path, nlohmann::json sidecar) {
  Scripter scripter;
  Module exported;
  if (auto* user = dynamic_cast<TorchScriptNetworkImpl*>(&network)) {
    exported = wrap_user_module(scripter, *user);
  } else {
    AMALGAM_CHECK(dynamic_cast<ZooNetworkImpl*>(&network) != nullptr,
                  "export: only zoo networks and TorchScript files can be exported");
    exported = scripter.script(network.shared_from_this());
  }
  exported.eval();  // a loaded export answers like the student; Python's .train() trains it

  sidecar["format"] = kExportFormat;
  sidecar["version"] = 2;
  sidecar["input"]["range"] = "[0,1], normalised inside forward";
  std::ostringstream bytes;  // in memory first: see save_network
  exported.save(bytes, {{kExportMetadataFile, sidecar.dump(2)}});
  fault_point(kFaultExport);  // tests: a signal between tracing and writing
  // An older export goes first and the sidecar is written next: the model file appears last, so a
  // present .pt is a whole export and never an older one beside a newer sidecar.
  std::filesystem::remove(path);
  write_text_atomically(sidecar_path(path), sidecar.dump(2) + "\n");
  write_bytes_atomically(path, bytes.str());
}

}  // namespace amalgam

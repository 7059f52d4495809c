#include "models/export.h"

#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "models/checkpoint.h"

namespace amalgam {
namespace {

std::string attribute_name(const std::string& path, size_t index) {
  std::string name = "t" + std::to_string(index) + "_" + path;
  for (char& c : name)
    if (c == '.') c = '_';
  return name;
}

}  // namespace

void export_torchscript(NetworkImpl& network, const std::string& path, nlohmann::json sidecar) {
  const bool was_training = network.is_training();
  network.eval();
  // The tracer turns tensors it can name into attribute reads of `holder`: registering the
  // network's own tensors there keeps weights as parameters instead of baked-in constants.
  torch::jit::Module holder("__torch__.amalgam.Student");
  size_t index = 0;
  for (const auto& p : network.named_parameters(true))
    holder.register_parameter(attribute_name(p.key(), index++), p.value(), false);
  for (const auto& b : network.named_buffers(true))
    holder.register_buffer(attribute_name(b.key(), index++), b.value());

  const InputSpec& in = network.input();
  const c10::Device device = device_of(network);
  const at::Tensor example =
      torch::rand({2, in.channels, in.height, in.width}, torch::TensorOptions().device(device));
  std::shared_ptr<torch::jit::Graph> graph;
  {
    torch::NoGradGuard no_grad;
    auto traced = torch::jit::tracer::trace(
        {example},
        [&](torch::jit::Stack inputs) -> torch::jit::Stack {
          return {network.forward(inputs[0].toTensor()).logits};
        },
        [](const at::Tensor&) { return std::string(); }, /*strict=*/true,
        /*force_outplace=*/false, &holder);
    graph = traced.first->graph;
  }
  network.train(was_training);
  auto function = holder._ivalue()->compilation_unit()->create_function(
      c10::QualifiedName(*holder.type()->name(), "forward"), graph);
  holder.type()->addMethod(function);
  // The saved module owns CPU copies, so exporting never moves or aliases the live network.
  std::vector<std::pair<std::string, bool>> attributes;
  for (const auto& p : holder.named_parameters(false)) attributes.emplace_back(p.name, true);
  for (const auto& b : holder.named_buffers(false)) attributes.emplace_back(b.name, false);
  for (const auto& [name, is_parameter] : attributes) {
    at::Tensor copy = holder.attr(name).toTensor().detach().to(at::kCPU).clone();
    if (is_parameter) copy.set_requires_grad(true);
    holder.setattr(name, copy);
  }

  sidecar["format"] = kExportFormat;
  sidecar["version"] = 1;
  sidecar["input"]["range"] = "[0,1], normalised inside forward";
  std::ostringstream bytes;  // in memory first: see save_network
  holder.save(bytes);
  write_bytes_atomically(path, bytes.str());
  write_text_atomically(sidecar_path(path), sidecar.dump(2) + "\n");
}

}  // namespace amalgam

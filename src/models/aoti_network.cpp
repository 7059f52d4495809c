#include "models/aoti_network.h"

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/torch.h>

#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "models/torchscript_network.h"

namespace amalgam {
namespace {

// What a package answers; the runner reports AOTInductor's own message on stderr and throws a
// generic "API call failed", so the likely causes are named here.
std::string refused_batch(const std::string& path, const at::Tensor& x, const std::string& what) {
  std::ostringstream text;
  text << path << ": the package refused a batch of " << x.size(0) << " images of " << x.size(1)
       << "x" << x.size(2) << "x" << x.size(3)
       << " (export it with a dynamic batch dimension, dynamic_shapes=({0: "
          "torch.export.Dim(\"batch\", min=1, max=4096)},), and check the input size and "
          "channels): "
       << what;
  return text.str();
}

std::string shape_text(const at::Tensor& t) {
  std::string text = "[";
  for (int64_t d : t.sizes()) text += (text.size() > 1 ? ", " : "") + std::to_string(d);
  return text + "]";
}

constexpr int64_t kProbeBatch = 32;

}  // namespace

bool is_aoti_package(const std::string& path) {
  // A .pt2 is a zip archive, as a TorchScript file is: the same magic check serves both.
  return std::filesystem::path(path).extension() == ".pt2" && is_torchscript_file(path);
}

AotiNetworkImpl::AotiNetworkImpl(const std::string& path, InputSpec input, FeatureLayout layout,
                                 c10::Device device)
    : path_(path), input_(std::move(input)), declared_layout_(layout), layout_(layout) {
  AMALGAM_CHECK(std::filesystem::is_regular_file(path_), path_ + ": no such model file");
  AMALGAM_CHECK(is_aoti_package(path_), path_ +
                                            ": not an AOTInductor package (a .pt2 zip written by "
                                            "torch._inductor.aoti_compile_and_package)");
  AMALGAM_CHECK(static_cast<int64_t>(input_.mean.size()) == input_.channels &&
                    static_cast<int64_t>(input_.std.size()) == input_.channels,
                path_ + ": mean and std need one value per input channel (" +
                    std::to_string(input_.channels) + ")");
  std::unordered_map<std::string, std::string> metadata;
  try {
    metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path_, "model");
  } catch (const std::exception& e) {
    throw Error(path_ +
                ": not a loadable AOTInductor package (torch.export.save writes an uncompiled "
                "program; compile it with torch._inductor.aoti_compile_and_package): " +
                first_line(e.what()));
  }
  package_device_ = metadata.count("AOTI_DEVICE_KEY") ? metadata.at("AOTI_DEVICE_KEY") : "cpu";
  const bool cuda_package = package_device_.rfind("cuda", 0) == 0;
  AMALGAM_CHECK(!cuda_package || torch::cuda::is_available(),
                path_ +
                    ": compiled for CUDA but this machine sees no CUDA device; compile it "
                    "on the CPU (export and package the model with a CPU example input)");
  run_device_ = cuda_package ? (device.is_cuda() ? device : c10::Device(c10::kCUDA, 0))
                             : c10::Device(c10::kCPU);
  try {
    loader_ = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
        path_, "model", /*run_single_threaded=*/false, /*num_runners=*/1,
        cuda_package ? run_device_.index() : static_cast<c10::DeviceIndex>(-1));
  } catch (const std::exception& e) {
    throw Error(path_ +
                ": cannot load the AOTInductor package (written by another PyTorch "
                "version, or for another machine?): " +
                first_line(e.what()));
  }
  // A package compiled for a fixed batch reads as many images as it was compiled for, whatever
  // it is given: a first batch larger than usual export examples (1 to 32) finds it out by the
  // rows it answers with, before any smaller batch could be read past its end.
  torch::NoGradGuard no_grad;
  forward(torch::zeros({kProbeBatch, input_.channels, input_.height, input_.width}));
}

AotiNetworkImpl::~AotiNetworkImpl() = default;

ModelOutput AotiNetworkImpl::forward(const at::Tensor& images) {
  const auto options = torch::TensorOptions().dtype(torch::kFloat32).device(images.device());
  const at::Tensor mean = torch::tensor(input_.mean, options).view({1, input_.channels, 1, 1});
  const at::Tensor std = torch::tensor(input_.std, options).view({1, input_.channels, 1, 1});
  const at::Tensor x = ((conform_input(images, input_).to(torch::kFloat32) - mean) / std)
                           .to(run_device_)
                           .contiguous();
  std::vector<at::Tensor> outputs;
  try {
    outputs = loader_->run({x});
  } catch (const std::exception& e) {
    throw Error(refused_batch(path_, x, first_line(e.what())));
  }
  AMALGAM_CHECK(!outputs.empty() && outputs.size() <= 2,
                path_ + ": the package returns " + std::to_string(outputs.size()) +
                    " outputs; amalgam reads (features, logits) or logits alone");
  const at::Tensor& logits = outputs.back();
  // A package exported without a dynamic batch dimension does not check its input: it answers
  // with as many rows as it was compiled for.
  AMALGAM_CHECK(logits.dim() != 2 || logits.size(0) == x.size(0),
                path_ + ": the package answers " + std::to_string(x.size(0)) + " images with " +
                    std::to_string(logits.size(0)) +
                    " rows: it was compiled for a fixed batch of " +
                    std::to_string(logits.size(0)) +
                    " images; export it with a dynamic batch dimension, dynamic_shapes=({0: "
                    "torch.export.Dim(\"batch\", min=1, max=4096)},)");
  AMALGAM_CHECK(logits.dim() == 2, path_ + ": its last output is " + shape_text(logits) +
                                       ", not logits [" + std::to_string(x.size(0)) + ", K]");
  ModelOutput out;
  out.logits = logits.to(images.device(), torch::kFloat32);
  if (outputs.size() == 2) {
    const at::Tensor& features = outputs.front();
    if (layout_ == FeatureLayout::kAuto)
      layout_ = resolve_feature_layout(features.sizes().vec(), input_.height, input_.width,
                                       declared_layout_, path_ + ": its first output (features)");
    out.features = to_feature_map(features, layout_).to(images.device(), torch::kFloat32);
  }
  return out;
}

std::shared_ptr<AotiNetworkImpl> load_aoti_network(const std::string& path, const InputSpec& input,
                                                   FeatureLayout layout, c10::Device device) {
  return std::make_shared<AotiNetworkImpl>(path, input, layout, device);
}

std::string inspect_aoti(const std::string& path, const InputSpec& input) {
  AotiNetworkImpl network(path, input, FeatureLayout::kAuto, c10::Device(c10::kCPU));
  torch::NoGradGuard no_grad;
  const at::Tensor x = torch::zeros({1, input.channels, input.height, input.width});
  const ModelOutput out = network.forward(x);
  std::ostringstream text;
  text << path << " (AOTInductor package, compiled for " << network.package_device()
       << "), input [1, " << input.channels << ", " << input.height << ", " << input.width
       << "]\n  no layers to tap: a package returns (features, logits) or logits alone\n";
  if (out.features.defined())
    text << "  features  " << feature_layout_name(network.layout()) << " -> "
         << shape_text(out.features.squeeze(0)) << "\n";
  else
    text << "  features  none (logits only: it can be scored, not amalgamated with a feature "
            "term)\n";
  text << "  output  " << shape_text(out.logits) << "\n";
  return text.str();
}

}  // namespace amalgam

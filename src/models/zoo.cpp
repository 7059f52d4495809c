#include "models/zoo.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/mobilenetv2.h"
#include "models/resnet.h"
#include "models/vgg.h"

namespace amalgam {

const std::vector<std::string>& zoo_architectures() {
  static const std::vector<std::string> names = {"resnet", "vgg", "mobilenetv2"};
  return names;
}

Network make_network(const ModelSpec& spec) {
  if (spec.arch == "resnet") return ResNet(spec).ptr();
  if (spec.arch == "vgg") return VGG(spec).ptr();
  if (spec.arch == "mobilenetv2") return MobileNetV2(spec).ptr();
  AMALGAM_CHECK(spec.arch != "torchscript",
                "a torchscript network is loaded from its file (PATH:LAYER), not built");
  throw Error("unknown architecture '" + spec.arch + "' (expected resnet, vgg or mobilenetv2)");
}

void to_json(nlohmann::json& j, const InputSpec& input) {
  j = nlohmann::json{{"channels", input.channels},
                     {"height", input.height},
                     {"width", input.width},
                     {"mean", input.mean},
                     {"std", input.std}};
}

void from_json(const nlohmann::json& j, InputSpec& input) {
  input.channels = j.at("channels").get<int64_t>();
  input.height = j.at("height").get<int64_t>();
  input.width = j.at("width").get<int64_t>();
  input.mean = j.at("mean").get<std::vector<double>>();
  input.std = j.at("std").get<std::vector<double>>();
}

void to_json(nlohmann::json& j, const ModelSpec& spec) {
  j = nlohmann::json{{"arch", spec.arch},           {"width", spec.width},
                     {"depth", spec.depth},         {"stages", spec.stages},
                     {"expansion", spec.expansion}, {"num_classes", spec.num_classes},
                     {"input", spec.input},         {"layer", spec.layer}};
}

void from_json(const nlohmann::json& j, ModelSpec& spec) {
  spec.arch = j.at("arch").get<std::string>();
  spec.width = j.at("width").get<int64_t>();
  spec.depth = j.at("depth").get<int64_t>();
  spec.stages = j.at("stages").get<int64_t>();
  spec.expansion = j.at("expansion").get<int64_t>();
  spec.num_classes = j.at("num_classes").get<int64_t>();
  spec.input = j.at("input").get<InputSpec>();
  spec.layer = j.value("layer", std::string());
}

}  // namespace amalgam

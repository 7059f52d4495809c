#include "training/student_io.h"

#include <torch/torch.h>

#include <torch/script.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/log.h"
#include "method/common_feature_block.h"
#include "models/checkpoint.h"
#include "models/export.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"

namespace amalgam {

void save_student(const AmalgamationResult& result, const std::string& path,
                  const nlohmann::json& extra) {
  nlohmann::json meta = extra;
  meta["role"] = "student";
  meta["model"] = result.student_spec;
  meta["head"] = result.head;
  save_network(*result.student, path, meta);
  if (CommonFeatureBlockImpl* block = result.objective->common_space()) {
    const auto& o = block->options();
    nlohmann::json block_meta = {{"role", "common_feature_block"},
                                 {"teacher_shapes", o.teacher_shapes},
                                 {"student_shape", o.student_shape},
                                 {"common_channels", o.common_channels},
                                 {"extractor_blocks", o.extractor_blocks}};
    std::filesystem::path block_path(path);
    block_path.replace_extension(".block.pt");
    save_network(*block, block_path.string(), block_meta);
  }
}

namespace {

Student load_exported_student(const std::string& path, const nlohmann::json& meta,
                              c10::Device device) {
  Student student;
  const std::string side = sidecar_path(path);
  const JsonFields fields(meta, side);
  nlohmann::json input_entry = fields.at("input");
  if (input_entry.is_object())
    input_entry.erase("range");  // export_student's note for Python readers (a string)
  InputSpec input = read_struct<InputSpec>(input_entry, side + " \"input\"");
  AMALGAM_CHECK(input.channels == 1 || input.channels == 3,
                side + ": \"input\" \"channels\" must be 1 or 3");
  // Normalisation is inside the exported forward: the wrapper passes [0,1] images through.
  input.mean.assign(static_cast<size_t>(input.channels), 0.0);
  input.std.assign(static_cast<size_t>(input.channels), 1.0);
  student.head = read_struct<HeadLayout>(fields.at("head"), side + " \"head\"");
  student.network = load_torchscript_network(path, "", input, device);
  student.network->eval();
  return student;
}

}  // namespace

double export_student(NetworkImpl& student, const HeadLayout& head, const std::string& path,
                      const nlohmann::json& extra) {
  nlohmann::json side = extra;
  side["head"] = head;
  side["input"] = student.input();
  side["outputs"] = head.total();
  nlohmann::json slices = nlohmann::json::array();
  for (size_t i = 0; i < head.tasks.size(); ++i)
    slices.push_back({{"task", head.tasks[i].name},
                      {"begin", head.offset(i)},
                      {"end", head.offset(i) + head.tasks[i].size()},
                      {"class_names", head.tasks[i].class_names}});
  side["tasks"] = slices;
  export_torchscript(student, path, side);

  // The file must reproduce the student: compare on random images before calling it done.
  const InputSpec& in = student.input();
  const c10::Device device = device_of(student);
  const at::Tensor images = torch::rand({4, in.channels, in.height, in.width});
  torch::NoGradGuard no_grad;
  const bool was_training = student.is_training();
  student.eval();
  const at::Tensor expected = student.forward(images.to(device)).logits.to(at::kCPU);
  student.train(was_training);
  torch::jit::Module reloaded = torch::jit::load(path);
  const at::Tensor got = reloaded.forward({images}).toTensor();
  const double diff = (got - expected).abs().max().item<double>();
  AMALGAM_CHECK(diff <= 1e-4, path +
                                  ": exported module disagrees with the student (max |logit "
                                  "difference| " +
                                  std::to_string(diff) + ")");
  return diff;
}

Student load_student(const std::string& path, c10::Device device) {
  AMALGAM_CHECK(std::filesystem::is_regular_file(path), path + ": no such model file");
  if (sidecar_format(path) == kExportFormat)
    return load_exported_student(path, read_json_file(sidecar_path(path)), device);
  SavedNetwork saved = load_network(path);
  AMALGAM_CHECK(
      saved.meta.contains("head"),
      sidecar_path(path) + ": no \"head\" entry; is this a student written by amalgamate?");
  Student student;
  student.network = saved.network;
  student.head = read_struct<HeadLayout>(saved.meta.at("head"), sidecar_path(path) + " \"head\"");
  // load_network has read "model" as a ModelSpec already.
  AMALGAM_CHECK(saved.meta.at("model").get<ModelSpec>().num_classes == student.head.total(),
                sidecar_path(path) + ": head layout does not match the network's outputs");
  student.network->to(device);
  student.network->eval();
  return student;
}

}  // namespace amalgam

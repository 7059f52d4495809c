#include "training/student_io.h"

#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "models/checkpoint.h"
#include "models/zoo.h"

namespace amalgam {

void save_student(const AmalgamationResult& result, const std::string& path,
                  const nlohmann::json& extra) {
  nlohmann::json meta = extra;
  meta["role"] = "student";
  meta["model"] = result.student_spec;
  meta["head"] = result.head;
  save_network(*result.student, path, meta);
  if (result.block) {
    const auto& o = result.block->options();
    nlohmann::json block_meta = {{"role", "common_feature_block"},
                                 {"teacher_shapes", o.teacher_shapes},
                                 {"student_shape", o.student_shape},
                                 {"common_channels", o.common_channels},
                                 {"extractor_blocks", o.extractor_blocks}};
    std::filesystem::path block_path(path);
    block_path.replace_extension(".block.pt");
    save_network(*result.block, block_path.string(), block_meta);
  }
}

Student load_student(const std::string& path, c10::Device device) {
  SavedNetwork saved = load_network(path);
  require(saved.meta.contains("head"),
          sidecar_path(path) + ": no \"head\" entry; is this a student written by amalgamate?");
  Student student;
  student.network = saved.network;
  student.head = saved.meta.at("head").get<HeadLayout>();
  require(saved.meta.at("model").at("num_classes").get<int64_t>() == student.head.total(),
          sidecar_path(path) + ": head layout does not match the network's outputs");
  student.network->to(device);
  student.network->eval();
  return student;
}

}  // namespace amalgam

#include "teachers/teacher.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/checkpoint.h"
#include "models/zoo.h"

namespace amalgam {

Teacher make_teacher(Network network, TaskSpec task) {
  freeze(*network);
  Teacher teacher;
  teacher.network = std::move(network);
  teacher.task = std::move(task);
  teacher.feature_shape = feature_shape(*teacher.network);
  return teacher;
}

void save_teacher(const torch::nn::Module& network, const ModelSpec& spec, const TaskSpec& task,
                  const std::string& path, const nlohmann::json& extra) {
  nlohmann::json meta = extra;
  meta["role"] = "teacher";
  meta["model"] = spec;
  meta["task"] = task;
  save_network(network, path, meta);
}

Teacher load_teacher(const std::string& path, c10::Device device) {
  SavedNetwork saved = load_network(path);
  require(saved.meta.contains("task"),
          sidecar_path(path) + ": no \"task\" entry; is this a teacher written by amalgam teach?");
  TaskSpec task = saved.meta.at("task").get<TaskSpec>();
  const auto logits = saved.meta.at("model").at("num_classes").get<int64_t>();
  require(logits == task.size(), path + ": the network has " + std::to_string(logits) +
                                     " outputs but its task '" + task.name + "' has " +
                                     std::to_string(task.size()) + " classes");
  saved.network->to(device);
  Teacher teacher = make_teacher(saved.network, std::move(task));
  teacher.path = path;
  return teacher;
}

std::vector<ModelOutput> teacher_outputs(const std::vector<Teacher>& teachers,
                                         const at::Tensor& images) {
  torch::NoGradGuard no_grad;
  std::vector<ModelOutput> outputs;
  outputs.reserve(teachers.size());
  for (const auto& teacher : teachers) outputs.push_back(teacher.network->forward(images));
  return outputs;
}

void check_teachers_compatible(const std::vector<Teacher>& teachers) {
  require(!teachers.empty(), "--teacher: at least one teacher is needed");
  const InputSpec& first = teachers.front().network->input();
  for (const auto& t : teachers) {
    const InputSpec& in = t.network->input();
    require(in.channels == first.channels && in.height == first.height && in.width == first.width,
            t.path + ": takes " + std::to_string(in.channels) + "x" + std::to_string(in.height) +
                "x" + std::to_string(in.width) + " images but " + teachers.front().path +
                " takes " + std::to_string(first.channels) + "x" + std::to_string(first.height) +
                "x" + std::to_string(first.width) + "; teachers must agree on input geometry");
  }
  std::vector<TaskSpec> tasks;
  for (const auto& t : teachers) tasks.push_back(t.task);
  check_disjoint(tasks);
}

}  // namespace amalgam

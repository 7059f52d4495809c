// The commands over a trained student: predict (its answers for images) and export (the student
// as TorchScript for Python).
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "app/commands.h"
#include "app/run_outputs.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_file.h"
#include "core/runtime.h"
#include "data/image_folder.h"
#include "evaluation/evaluate.h"
#include "models/checkpoint.h"
#include "models/export.h"
#include "training/student_io.h"

namespace amalgam {

namespace {

// One image's answers: its logits; per task the class its slice picks and that class's
// probability within the task; the task gate (each slice's softmax mass); and the union answer
// (argmax over the whole head: task, class and probability), the one to use when the task is not
// known.
nlohmann::json prediction_record(const at::Tensor& logits, const HeadLayout& head) {
  const at::Tensor row = logits.to(torch::kFloat32).contiguous();
  const auto class_name = [&](size_t t, int64_t local) {
    const TaskSpec& task = head.tasks[t];
    return task.class_names.empty() ? nlohmann::json(local)
                                    : nlohmann::json(task.class_names[static_cast<size_t>(local)]);
  };
  nlohmann::json entry = {
      {"logits", std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel())}};
  const at::Tensor joint = torch::softmax(row, 0);
  for (size_t t = 0; t < head.tasks.size(); ++t) {
    const int64_t begin = head.offset(t), size = head.tasks[t].size();
    const at::Tensor within = torch::softmax(row.slice(0, begin, begin + size), 0);
    const int64_t best = within.argmax().item<int64_t>();
    const std::string& name = head.tasks[t].name;
    entry["predicted"][name] = class_name(t, best);
    entry["probability"][name] = within[best].item<double>();
    entry["task_probability"][name] = joint.slice(0, begin, begin + size).sum().item<double>();
  }
  const int64_t top = joint.argmax().item<int64_t>();
  size_t task = 0;
  while (top >= head.offset(task) + head.tasks[task].size()) ++task;
  entry["union"] = {{"task", head.tasks[task].name},
                    {"class", class_name(task, top - head.offset(task))},
                    {"probability", joint[top].item<double>()}};
  return entry;
}

}  // namespace

// Per-task predictions with probabilities, the task gate and the union answer of a student for
// every image file given or found under the folders, as JSON.
int run_predict(const PredictCommand& c) {
  const DataOptions& d = c.data;
  const std::string& model_path = c.model;
  const std::string& out_path = c.json_path;
  const std::string& device = c.runtime.device;
  configure_threads(c.runtime.threads);
  const Student student = load_student(model_path, parse_device(device));
  ImageFolderOptions geometry;
  geometry.channels = student.network->input().channels;
  geometry.height = student.network->input().height;
  geometry.width = student.network->input().width;
  geometry.on_bad_image = d.source.on_bad_image;
  std::vector<ImageFile> files;
  const at::Tensor images = load_image_tree(d.source.dirs, geometry, &files);
  const at::Tensor logits = predict_logits(*student.network, images, kInferenceBatch).contiguous();
  nlohmann::json result = {{"model", model_path}, {"images", nlohmann::json::array()}};
  for (int64_t i = 0; i < logits.size(0); ++i) {
    nlohmann::json entry = prediction_record(logits[i], student.head);
    entry["file"] = files[static_cast<size_t>(i)].name();
    result["images"].push_back(entry);
  }
  const std::string text = result.dump(1) + "\n";
  if (out_path.empty())
    std::printf("%s", text.c_str());
  else
    write_text_atomically(out_path, text);
  return 0;
}

namespace {

// The student file of `model`: the file itself, or RUN_DIR/student.pt for a run directory.
std::string student_file(const std::string& model) {
  if (!std::filesystem::is_directory(model)) return model;
  const std::string path = (std::filesystem::path(model) / "student.pt").string();
  AMALGAM_CHECK(std::filesystem::is_regular_file(path),
                model + ": no student.pt in this run directory; has the run finished?");
  return path;
}

}  // namespace

int run_export(const ExportCommand& c) {
  configure_threads(c.threads);
  const std::string path = student_file(c.model);
  AMALGAM_CHECK(std::filesystem::is_regular_file(path), path + ": no such model file");
  AMALGAM_CHECK(sidecar_format(path) != kExportFormat,
                path + ": already a TorchScript export; use it as it is");
  check_export_target("--out", c.out, {path});
  const Student student = load_student(path, c10::Device(c10::kCPU));
  // The run's record of how the student was made travels with the export.
  const nlohmann::json side = read_json_file(sidecar_path(path));
  nlohmann::json provenance = nlohmann::json::object();
  for (const char* key : {"method", "teachers"})
    if (side.contains(key)) provenance[key] = side.at(key);
  const double diff = export_student(*student.network, student.head, c.out, provenance);
  std::printf("exported TorchScript student -> %s (reloaded: max |logit difference| %.2g)\n",
              c.out.c_str(), diff);
  return 0;
}

}  // namespace amalgam

#include "evaluation/embedding.h"

#include <torch/torch.h>

#include "data/dataset.h"

namespace amalgam {
namespace {

// First two principal coordinates of the rows of x.
at::Tensor pca2(const at::Tensor& x) {
  const at::Tensor centred =
      x.flatten(1).to(torch::kFloat64) - x.flatten(1).to(torch::kFloat64).mean(0);
  const auto [u, s, vh] = at::linalg_svd(centred, false);
  const int64_t k = std::min<int64_t>(2, s.size(0));
  at::Tensor coords = u.slice(1, 0, k) * s.slice(0, 0, k);
  if (k < 2)
    coords = torch::cat({coords, torch::zeros({coords.size(0), 2 - k}, coords.options())}, 1);
  return coords.contiguous();
}

nlohmann::json points(const at::Tensor& coords, const at::Tensor& classes, int group, int64_t begin,
                      int64_t end) {
  nlohmann::json list = nlohmann::json::array();
  const auto c = coords.accessor<double, 2>();
  const auto k = classes.accessor<int64_t, 1>();
  for (int64_t i = begin; i < end; ++i)
    list.push_back({{"x", c[i][0]}, {"y", c[i][1]}, {"class", k[i - begin]}, {"group", group}});
  return list;
}

}  // namespace

nlohmann::json feature_embedding(const std::vector<Teacher>& teachers, NetworkImpl& student,
                                 CommonFeatureBlockImpl* block, const at::Tensor& images,
                                 const at::Tensor& labels, int64_t max_points) {
  torch::NoGradGuard no_grad;
  const bool was_training = student.is_training();
  student.eval();
  if (block != nullptr) block->eval();
  const int64_t n = std::min<int64_t>(max_points, images.size(0));
  const at::Tensor x = to_network_input(images.slice(0, 0, n), device_of(student));
  const ModelOutput s = student.forward(x);
  const std::vector<ModelOutput> t = teacher_outputs(teachers, x);
  nlohmann::json out = {{"maps", nlohmann::json::object()}};
  at::Tensor classes;
  if (labels.defined()) {
    classes = labels.slice(0, 0, n).remainder(10).to(torch::kInt64).contiguous();
    out["colour_by"] = "true class";
  } else {
    std::vector<at::Tensor> logits;
    for (const auto& o : t) logits.push_back(o.logits);
    classes = torch::cat(logits, 1).argmax(1).remainder(10).to(at::kCPU).contiguous();
    out["colour_by"] = "the teachers' joint prediction";
  }
  // Colours cycle over ten: the legend names the classes each colour stands for.
  std::vector<std::string> legend(10);
  for (const auto& teacher : teachers)
    for (size_t k = 0; k < teacher.task.classes.size(); ++k) {
      std::string& entry = legend[static_cast<size_t>(teacher.task.classes[k] % 10)];
      entry += (entry.empty() ? "" : " / ") + (k < teacher.task.class_names.size()
                                                   ? teacher.task.class_names[k]
                                                   : std::to_string(teacher.task.classes[k]));
    }
  while (!legend.empty() && legend.back().empty()) legend.pop_back();
  out["legend"] = legend;
  out["maps"]["student, raw features"] = points(pca2(s.features.cpu()), classes, 0, 0, n);
  for (size_t i = 0; i < teachers.size(); ++i)
    out["maps"]["teacher " + teachers[i].task.name + ", raw features"] =
        points(pca2(t[i].features.cpu()), classes, 0, 0, n);
  if (block != nullptr) {
    const at::Tensor h_s = block->student_common(s.features).cpu().flatten(1);
    for (size_t i = 0; i < teachers.size(); ++i) {
      const at::Tensor h_i = block->teacher_common(i, t[i].features).cpu().flatten(1);
      const at::Tensor coords = pca2(torch::cat({h_s, h_i}, 0));
      nlohmann::json map = points(coords, classes, 0, 0, n);
      for (auto& p : points(coords, classes, 1, n, 2 * n)) map.push_back(p);
      out["maps"]["common space: student and " + teachers[i].task.name] = map;
    }
  }
  student.train(was_training);
  return out;
}

}  // namespace amalgam

#include "training/run_plan.h"

#include <torch/torch.h>

#include "core/error.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"

namespace amalgam {

namespace {

// The student a run trains: the ready-made network, or one built from `spec`. Its head must
// cover every teacher's classes and it must give a feature map.
Network build_student(const Network& ready_made, ModelSpec& spec, c10::Device device) {
  const InputSpec input = spec.input;  // the transfer images' geometry, which the probe gets
  Network student = ready_made;
  if (student) {
    spec.arch = "torchscript";
    if (auto* scripted = dynamic_cast<TorchScriptNetworkImpl*>(student.get()))
      spec.layer = scripted->tap();
    spec.input = student->input();
  } else {
    student = make_network(spec);
  }
  student->to(device);
  for (auto& p : student->parameters()) p.set_requires_grad(true);
  torch::NoGradGuard no_grad;
  student->eval();
  const auto probe = student->forward(torch::zeros({1, input.channels, input.height, input.width},
                                                   torch::TensorOptions().device(device)));
  AMALGAM_CHECK(probe.logits.size(1) == spec.num_classes,
                "--student: produces " + std::to_string(probe.logits.size(1)) +
                    " logits but the teachers have " + std::to_string(spec.num_classes) +
                    " classes in all");
  AMALGAM_CHECK(probe.features.defined(), "--student: no feature map (give PATH:LAYER)");
  return student;
}

}  // namespace

RunPlan plan_amalgamation(const std::vector<Teacher>& teachers, const AmalgamateConfig& config,
                          const Network& student_network, c10::Device device) {
  RunPlan plan;
  for (const auto& t : teachers) plan.head.tasks.push_back(t.task);
  // Each network conforms the images to its own geometry; the student is built for the largest.
  plan.student_spec = config.student;
  plan.student_spec.input = transfer_input(teachers);
  plan.student_spec.num_classes = plan.head.total();
  plan.student = build_student(student_network, plan.student_spec, device);
  plan.objective.config = config.objective;
  for (const auto& t : teachers) plan.objective.teacher_shapes.push_back(t.feature_shape);
  plan.objective.student_shape = feature_shape(*plan.student);
  plan.objective.head = plan.head;
  plan.objective.block_lr_mult = config.train.block_lr_mult;
  return plan;
}

}  // namespace amalgam

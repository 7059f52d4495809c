#include "routing/gate_calibration.h"

#include <torch/torch.h>

#include <cstdio>
#include <string>

#include "core/log.h"
#include "models/predict.h"
#include "routing/routing.h"

namespace amalgam {
namespace {

constexpr double kMinShare = 0.01;  // the smallest share a task is calibrated to

// The output layer's bias: the head's, or for networks without a declared head (TorchScript
// students) the last parameter named *bias with one entry per class. Undefined when none.
at::Tensor output_bias(NetworkImpl& network, int64_t classes) {
  for (const auto& p : network.head_parameters())
    if (p.dim() == 1 && p.size(0) == classes) return p;
  at::Tensor found;
  for (const auto& p : network.named_parameters(true)) {
    const std::string& name = p.key();
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_bias && p.value().dim() == 1 && p.value().size(0) == classes) found = p.value();
  }
  return found;
}

std::vector<double> routed_shares(const at::Tensor& gate_scores) {
  return task_shares(gate_scores.argmax(1), gate_scores.size(1));
}

std::string percents(const HeadLayout& head, const std::vector<double>& shares) {
  std::string text;
  for (size_t i = 0; i < shares.size(); ++i) {
    char part[96];
    std::snprintf(part, sizeof part, "%s%s %.1f%%", i ? " " : "", head.tasks[i].name.c_str(),
                  100.0 * shares[i]);
    text += part;
  }
  return text;
}

}  // namespace

GateCalibration calibrate_task_gate(NetworkImpl& student, const at::Tensor& images,
                                    const HeadLayout& head, const std::vector<double>& shares) {
  GateCalibration result;
  at::Tensor bias = output_bias(student, head.total());
  if (!bias.defined()) {
    log_warning(
        "amalgamate: the student's output layer has no bias; its task gate is left as "
        "trained");
    return result;
  }
  const int64_t n = images.size(0);
  const int64_t stride = std::max<int64_t>(1, n / kCalibrationImages);
  const at::Tensor sample = images.slice(0, 0, n, stride);
  std::vector<int64_t> sizes;
  for (const auto& task : head.tasks) sizes.push_back(task.size());
  const at::Tensor gate = slice_log_probabilities(
      predict_logits(student, sample, kInferenceBatch).to(torch::kFloat64), sizes);
  // A task the routing gave no image would pull its slice to minus infinity; keep it reachable.
  std::vector<double> target;
  for (double share : shares) target.push_back(std::max(share, kMinShare));
  const at::Tensor shift = calibrate_to_prior(gate, target);
  if (!torch::isfinite(shift).all().item<bool>()) {
    log_warning("amalgamate: the task gate's calibration did not converge; left as trained");
    return result;
  }
  result.share_before = routed_shares(gate);
  result.share_after = routed_shares(gate + shift);
  result.bias.assign(shift.data_ptr<double>(), shift.data_ptr<double>() + shift.numel());
  {
    torch::NoGradGuard no_grad;
    int64_t offset = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      bias.slice(0, offset, offset + sizes[i]).add_(result.bias[i]);
      offset += sizes[i];
    }
  }
  result.applied = true;
  log_info("amalgamate: task gate calibrated to the teachers' routed shares on " +
           std::to_string(sample.size(0)) + " transfer images: routed " +
           percents(head, result.share_before) + " -> " + percents(head, result.share_after));
  return result;
}

}  // namespace amalgam

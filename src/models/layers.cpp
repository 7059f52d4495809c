#include "models/layers.h"

#include <torch/torch.h>

#include "core/error.h"

namespace amalgam {

ConvBNImpl::ConvBNImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                       Activation activation, int64_t groups)
    : activation_(activation) {
  conv_ = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                        .stride(stride)
                                                        .padding(kernel / 2)
                                                        .groups(groups)
                                                        .bias(false)));
  bn_ = register_module("bn", torch::nn::BatchNorm2d(out));
}

at::Tensor ConvBNImpl::forward(const at::Tensor& x) {
  at::Tensor y = statistics_gather_ && is_training() ? synchronised_batch_norm(conv_->forward(x))
                                                     : bn_->forward(conv_->forward(x));
  if (activation_ == Activation::kReLU) return torch::relu_(y);
  if (activation_ == Activation::kReLU6) return torch::hardtanh_(y, 0.0, 6.0);
  return y;
}

// BatchNorm in training mode over the whole batch whose shards statistics_gather_ collects: each
// shard's count, mean and centred second moment, combined as in parallel variance (stable, one
// collective per layer); the running statistics are updated as BatchNorm2d does.
at::Tensor ConvBNImpl::synchronised_batch_norm(const at::Tensor& x) {
  const auto& o = bn_->options;
  const int64_t c = x.size(1);
  const auto channel = [](const at::Tensor& t) { return t.view({1, -1, 1, 1}); };
  const at::Tensor local_mean = x.mean({0, 2, 3});
  const at::Tensor local_m2 = (x - channel(local_mean)).square().sum({0, 2, 3});
  const at::Tensor local_count = torch::full({1}, static_cast<double>(x.numel() / c), x.options());
  const at::Tensor shards = statistics_gather_(torch::cat({local_count, local_mean, local_m2}));
  const at::Tensor counts = shards.slice(1, 0, 1);  // [ranks,1]
  const at::Tensor means = shards.slice(1, 1, 1 + c), m2s = shards.slice(1, 1 + c, 1 + 2 * c);
  const at::Tensor count = counts.sum();
  const at::Tensor mean = (counts * means).sum(0) / count;
  const at::Tensor var = (m2s + counts * (means - mean).square()).sum(0) / count;
  at::Tensor y = (x - channel(mean)) * channel(torch::rsqrt(var + o.eps()));
  if (o.affine()) y = y * channel(bn_->weight) + channel(bn_->bias);
  if (o.track_running_stats()) {
    torch::NoGradGuard no_grad;
    bn_->num_batches_tracked.add_(1);
    // No momentum: a cumulative average, as BatchNorm2d does.
    const double momentum =
        o.momentum() ? *o.momentum() : 1.0 / bn_->num_batches_tracked.item<double>();
    const double n = count.item<double>();
    bn_->running_mean.mul_(1 - momentum).add_(mean.detach(), momentum);
    bn_->running_var.mul_(1 - momentum).add_(var.detach() * (n / std::max(1.0, n - 1)), momentum);
  }
  return y;
}

int64_t set_statistics_gather(torch::nn::Module& module, const StatisticsGather& gather) {
  int64_t count = 0;
  for (auto& child : module.modules(/*include_self=*/true)) {
    if (auto* conv_bn = child->as<ConvBNImpl>()) {
      conv_bn->set_statistics_gather(gather);
      ++count;
    }
  }
  return count;
}

ZooNetworkImpl::ZooNetworkImpl(ModelSpec spec) : spec_(std::move(spec)) {
  const InputSpec& in = spec_.input;
  AMALGAM_CHECK(spec_.width > 0, "model: --width must be > 0");
  AMALGAM_CHECK(spec_.depth > 0, "model: --depth must be > 0");
  AMALGAM_CHECK(spec_.stages > 0 && spec_.stages <= 6, "model: --stages must be in 1..6");
  AMALGAM_CHECK(spec_.num_classes > 0, "model: number of classes must be > 0");
  AMALGAM_CHECK(in.channels > 0 && in.height > 0 && in.width > 0,
                "model: input size must be positive");
  AMALGAM_CHECK(static_cast<int64_t>(in.mean.size()) == in.channels &&
                    static_cast<int64_t>(in.std.size()) == in.channels,
                "model: --mean and --std need one value per input channel");
  for (double s : in.std) AMALGAM_CHECK(s > 0, "model: --std values must be > 0");
  mean_ = register_buffer("input_mean",
                          torch::tensor(in.mean, torch::kFloat32).view({1, in.channels, 1, 1}));
  std_ = register_buffer("input_std",
                         torch::tensor(in.std, torch::kFloat32).view({1, in.channels, 1, 1}));
}

void ZooNetworkImpl::set_backbone(torch::nn::Sequential backbone, int64_t feature_channels) {
  backbone_ = register_module("body", backbone);
  head_ = register_module("head", torch::nn::Linear(feature_channels, spec_.num_classes));
}

ModelOutput ZooNetworkImpl::forward(const at::Tensor& images) {
  const at::Tensor x = (conform_input(images, spec_.input) - mean_) / std_;
  ModelOutput out;
  out.features = backbone_->forward(x);
  out.logits = head_->forward(torch::adaptive_avg_pool2d(out.features, {1, 1}).flatten(1));
  return out;
}

std::vector<at::Tensor> ZooNetworkImpl::head_parameters() {
  return head_->parameters();
}

int64_t stage_channels(const ModelSpec& spec, int64_t stage) {
  return spec.width << stage;
}

}  // namespace amalgam

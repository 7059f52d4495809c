#include "training/teach.h"

#include <torch/torch.h>

#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "data/batch_loader.h"
#include "evaluation/evaluate.h"
#include "models/zoo.h"
#include "training/options_json.h"
#include "training/replicas.h"
#include "training/run_checkpoint.h"
#include "training/training_loop.h"

namespace amalgam {
namespace {

constexpr int64_t kProgressEvery = 100;  // steps between progress lines

// What must not change between a teaching run and its resumption.
nlohmann::json teach_fingerprint(const ModelSpec& spec, const TaskSpec& task,
                                 const LabeledImages& train, const TrainOptions& options) {
  const at::Tensor labels = train.labels.contiguous();
  return without_resumable_fields({{"command", "teach"},
                                   {"model", spec},
                                   {"task", task.name},
                                   {"classes", task.classes},
                                   {"train", options},
                                   {"images", train.size()},
                                   {"labels_crc", crc32_of(labels.data_ptr(), labels.nbytes())}});
}

// Cross-entropy of the network's logits (computed at `precision`) against the batch's labels.
LossTerms supervised_loss(NetworkImpl& net, Precision precision, c10::Device device,
                          const Batch& batch, const at::Tensor& images) {
  at::Tensor logits;
  {
    AutocastGuard autocast(precision, device);
    logits = net.forward(images).logits;
  }
  LossTerms loss;
  loss.total = torch::cross_entropy_loss(logits.to(torch::kFloat32), batch.labels.to(device));
  loss.add("ce", loss.total);
  return loss;
}

// A progress line every kProgressEvery steps, with the time left.
StepCallback progress_lines(const std::string& task, const TrainOptions& options) {
  return [task, options](const StepRecord& r) {
    if ((r.step + 1) % kProgressEvery != 0) return;
    const double rate = r.seconds > 0 ? 1.0 / r.seconds : 0;  // steps per second
    const int64_t left = total_steps(options, r.steps_per_epoch) - r.global_step - 1;
    char line[200];
    std::snprintf(line, sizeof line, "teach %s: epoch %lld/%lld step %lld/%lld loss %.4f ETA %s",
                  task.c_str(), static_cast<long long>(r.epoch + 1),
                  static_cast<long long>(options.epochs), static_cast<long long>(r.step + 1),
                  static_cast<long long>(r.steps_per_epoch), r.loss.get("total"),
                  duration_text(rate > 0 ? left / rate : 0).c_str());
    log_info(line);
  };
}

}  // namespace

TrainOptions teach_defaults() {
  TrainOptions options;
  options.head_lr_mult = 1.0;
  return options;
}

TeachResult teach(ModelSpec spec, const TaskSpec& task, const LabeledImages& train,
                  const LabeledImages& val, const TrainOptions& options, const TeachRun& run) {
  validate(options);
  AMALGAM_CHECK(train.size() > 0, "teach: no training images");
  AMALGAM_CHECK(
      options.augment.mixup_alpha == 0,
      "--mixup: teach learns labels, and a mixed image has none (mixup is for amalgamate)");
  const c10::Device device = parse_device(options.device);
  const Precision precision = parse_precision(options.precision, device);
  const double start = now_seconds();
  spec.num_classes = task.size();
  torch::manual_seed(options.seed);
  TeachResult result;
  result.network = make_network(spec);
  NetworkImpl& net = *result.network;
  net.to(device);

  BatchLoaderOptions loader_options;
  loader_options.batch_size = options.batch_size;
  loader_options.seed = options.seed;
  BatchLoader loader(train.images, train.labels, loader_options);
  const std::vector<ParamGroup> groups = {{net.backbone_parameters(), 1.0},
                                          {net.head_parameters(), options.head_lr_mult}};
  ScheduledAdam optimizer(groups, options, loader.batches_per_epoch());
  RunCheckpointer checkpointer(run.checkpoint_path, {&net, nullptr, &optimizer},
                               teach_fingerprint(spec, task, train, options));
  RunProgress progress;
  if (run.resume) {
    progress = checkpointer.restore(nullptr);
    if (run.on_resumed) run.on_resumed();
    log_info("teach: resuming at epoch " + std::to_string(progress.epoch + 1) + ", step " +
             std::to_string(progress.step) + " from " + run.checkpoint_path);
  }
  Replicas replicas(nullptr);
  torch::nn::Module no_parts;
  const auto score = [&](NetworkImpl& network) {
    return accuracy(network, val, 0, task.size(), options.batch_size);
  };
  TrainingLoop loop{
      "teach",
      spec.arch + " (" + task.name + ")",
      options,
      run.checkpoint_every,
      net,
      no_parts,
      [&](const Batch& batch, const at::Tensor&, const at::Tensor& images, const BatchContext&) {
        return supervised_loss(net, precision, device, batch, images);
      },
      loader,
      optimizer,
      replicas,
      checkpointer,
      device,
      progress_lines(task.name, options),
      [&](const EpochStats&, NetworkImpl& network) {
        if (val.size() == 0) return;
        result.val_accuracy.push_back(score(network));
        char line[64];
        std::snprintf(line, sizeof line, " val acc %.4f", result.val_accuracy.back());
        log_info("teach " + task.name + ":" + line);
      }};
  for (const EpochStats& epoch : run_training_loop(loop, progress))
    result.epoch_loss.push_back(epoch.loss.get("total"));
  net.eval();
  if (val.size() > 0 && result.val_accuracy.empty()) result.val_accuracy.push_back(score(net));
  result.seconds = now_seconds() - start;
  return result;
}

}  // namespace amalgam

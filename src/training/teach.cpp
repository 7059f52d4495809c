#include "training/teach.h"

#include <torch/torch.h>

#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "data/augment.h"
#include "data/batch_loader.h"
#include "evaluation/evaluate.h"
#include "models/zoo.h"

namespace amalgam {
namespace {

constexpr int64_t kProgressEvery = 100;  // steps between progress lines

}  // namespace

TeachResult teach(ModelSpec spec, const TaskSpec& task, const LabeledImages& train,
                  const LabeledImages& val, const TrainOptions& options) {
  validate(options);
  AMALGAM_CHECK(train.size() > 0, "teach: no training images");
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
  ScheduledAdam optimizer({{net.backbone_parameters(), 1.0}, {net.head_parameters(), 1.0}}, options,
                          loader.batches_per_epoch());
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    net.train();
    loader.start_epoch(epoch);
    double loss_sum = 0;
    int64_t seen = 0;
    const double epoch_start = now_seconds();
    int64_t step = 0;
    while (auto batch = loader.next()) {
      const at::Tensor images = augment_batch(batch->images.to(device), options.augment,
                                              augment_seed(options.seed, epoch, step++));
      const at::Tensor labels = batch->labels.to(device);
      optimizer.zero_grad();
      at::Tensor logits;
      {
        AutocastGuard autocast(precision, device);
        logits = net.forward(images).logits;
      }
      const at::Tensor loss = torch::cross_entropy_loss(logits.to(torch::kFloat32), labels);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * images.size(0);
      seen += images.size(0);
      if (step % kProgressEvery == 0) {
        const double rate = seen / (now_seconds() - epoch_start);
        const int64_t left = (options.epochs - epoch) * loader.size() - seen;
        char line[200];
        std::snprintf(line, sizeof line,
                      "teach %s: epoch %lld/%lld step %lld/%lld loss %.4f %.0f img/s ETA %s",
                      task.name.c_str(), static_cast<long long>(epoch + 1),
                      static_cast<long long>(options.epochs), static_cast<long long>(step),
                      static_cast<long long>(loader.batches_per_epoch()), loss.item<double>(), rate,
                      duration_text(left / rate).c_str());
        log_info(line);
      }
    }
    result.epoch_loss.push_back(loss_sum / seen);
    char line[256];
    std::snprintf(line, sizeof line, "teach %s (%s): epoch %lld/%lld loss %.4f  %.0f img/s",
                  spec.arch.c_str(), task.name.c_str(), static_cast<long long>(epoch + 1),
                  static_cast<long long>(options.epochs), result.epoch_loss.back(),
                  seen / (now_seconds() - epoch_start));
    std::string message = line;
    if (val.size() > 0) {
      result.val_accuracy.push_back(accuracy(net, val, 0, task.size(), options.batch_size));
      std::snprintf(line, sizeof line, "  val acc %.4f", result.val_accuracy.back());
      message += line;
    }
    log_info(message);
  }
  net.eval();
  result.seconds = now_seconds() - start;
  return result;
}

}  // namespace amalgam

#include "training/training_loop.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "data/augment.h"
#include "training/replicas.h"
#include "training/run_checkpoint.h"

namespace amalgam {

const std::vector<std::string>& resumable_fields() {
  // Threads change speed, not results beyond rounding; checkpoint_every and log_every only what
  // is written when; more epochs extend a run (the learning-rate schedule stretched over the new
  // total from the step where it stands), unless train.steps fixed its length (refused then).
  // A lower learning rate (and the divergence guard's bound) may continue a diverged run from its
  // last good checkpoint. min_steps acted once, on the epochs, when the run started.
  static const std::vector<std::string> fields = {
      "/train/threads",         "/train/epochs", "/train/lr",       "/checkpoint_every",
      "/train/max_loss_growth", "/log_every",    "/train/min_steps"};
  return fields;
}

nlohmann::json without_resumable_fields(nlohmann::json options) {
  for (const auto& field : resumable_fields()) {
    const nlohmann::json::json_pointer pointer(field);
    if (options.contains(pointer.parent_pointer()))
      options[pointer.parent_pointer()].erase(pointer.back());
  }
  return options;
}

namespace {

// What to try after a loss or gradient went wrong.
std::string lr_hint(const TrainingLoop& loop) {
  return loop.parts.parameters().empty() ? " (try a lower --lr)"
                                         : " (try a lower --lr or --block-lr-mult)";
}

// Stops the run at the first non-finite loss term, naming it and what survives of the run.
void check_finite(const LossValues& loss, const RunProgress& at, const TrainingLoop& loop) {
  for (const auto& [term, value] : loss.terms())
    AMALGAM_CHECK(std::isfinite(value),
                  loop.name + ": loss term '" + term + "' is " + std::to_string(value) +
                      " at epoch " + std::to_string(at.epoch + 1) + ", step " +
                      std::to_string(at.step) + lr_hint(loop) + loop.checkpointer.kept());
}

// Stops the run at a step whose total loss has grown past train.max_loss_growth times the run's
// first step's (at least 1, so a tiny first loss does not make ordinary noise a divergence),
// before the step updates anything: a finite but exploding loss (--lr 1e6 reached 2.8e14 in one
// epoch) would otherwise end in a saved, useless network.
void check_bounded(const LossValues& loss, const RunProgress& at, const TrainingLoop& loop) {
  const double growth = loop.train.max_loss_growth;
  if (growth <= 0 || at.reference_loss <= 0) return;
  const double bound = growth * std::max(1.0, at.reference_loss);
  const double total = loss.get("total");
  if (total <= bound) return;
  std::string largest = "total";  // the term that grew: the one that is largest now
  double largest_value = 0;
  for (const auto& [term, value] : loss.terms())
    if (term != "total" && value > largest_value) largest = term, largest_value = value;
  char text[200];
  std::snprintf(text, sizeof text,
                "total %.4g exceeds %g x its first step's %.4g; term '%s' is %.4g", total, growth,
                at.reference_loss, largest.c_str(), largest_value);
  throw Error(loop.name + ": the loss diverged at epoch " + std::to_string(at.epoch + 1) +
              ", step " + std::to_string(at.step) + " (" + text +
              "; lower --lr, or raise --max-loss-growth)" + loop.checkpointer.kept());
}

// Stops the run when a gradient is NaN or Inf, before the optimiser applies it.
void check_finite_gradients(const TrainingLoop& loop, const RunProgress& at) {
  at::Tensor finite = torch::ones({}, torch::kBool);
  for (const auto* module : {static_cast<const torch::nn::Module*>(&loop.network),
                             static_cast<const torch::nn::Module*>(&loop.parts)})
    for (const auto& p : module->parameters())
      if (p.grad().defined()) finite = finite.logical_and(torch::isfinite(p.grad()).all().cpu());
  AMALGAM_CHECK(finite.item<bool>(),
                loop.name + ": a gradient is NaN or Inf at epoch " + std::to_string(at.epoch + 1) +
                    ", step " + std::to_string(at.step) + lr_hint(loop) + loop.checkpointer.kept());
}

// One optimisation step on `batch`: augment, loss, agreed terms, checks, update.
LossValues train_step(TrainingLoop& loop, const Batch& batch, const RunProgress& at, int& signal) {
  const TrainOptions& train = loop.train;
  const at::Tensor clean = batch.images.to(loop.device);
  const at::Tensor images =
      augment_batch(clean, train.augment, augment_seed(train.seed, at.epoch, at.step),
                    loop.replicas.first_image(batch.images.size(0)), batch.flipped);
  loop.optimizer.zero_grad();
  const double steps = static_cast<double>(total_steps(train, loop.loader.batches_per_epoch()));
  const BatchContext context{loop.replicas.gather(), batch.indices, at.global_step / steps};
  const LossTerms loss = loop.loss(batch, clean, images, context);
  LossValues values = loss.values();
  signal = stop_signal();
  loop.replicas.agree(values, signal);
  check_finite(values, at, loop);
  check_bounded(values, at, loop);
  loss.total.backward();
  loop.replicas.average_gradients();
  check_finite_gradients(loop, at);
  loop.optimizer.step();
  return values;
}

void report_step(const TrainingLoop& loop, const Batch& batch, const LossValues& loss,
                 const std::vector<double>& lrs, const RunProgress& at, double started) {
  if (!loop.on_step) return;
  StepRecord record;
  record.epoch = at.epoch;
  record.step = at.step;
  record.global_step = at.global_step;
  record.steps_per_epoch = loop.loader.batches_per_epoch();
  record.indices = batch.indices;
  record.loss = loss;
  record.lrs = lrs;
  record.seconds = now_seconds() - started;
  loop.on_step(record);
}

void save_checkpoint(TrainingLoop& loop, const RunProgress& progress) {
  // Every rank: BatchNorm statistics were tracked per shard.
  loop.replicas.average_buffers({&loop.network, &loop.parts});
  loop.checkpointer.save(progress);
}

Interrupted stopped(const TrainingLoop& loop, int signal, int64_t epoch, int64_t step) {
  const std::string& path = loop.checkpointer.path();
  const bool other_rank = loop.replicas.ranks() > 1 && path.empty();
  return Interrupted(signal, "stopped by signal " + std::to_string(signal) + " after epoch " +
                                 std::to_string(epoch + 1) + " step " + std::to_string(step) +
                                 (!path.empty() ? "; checkpoint written to " + path
                                  : other_rank  ? " (rank 0 writes the run's checkpoint)"
                                               : " (no checkpoint: the run had no run directory)"));
}

// One epoch from where `progress` stands; its mean terms are appended to progress.history.
void train_epoch(TrainingLoop& loop, RunProgress& progress) {
  const int64_t epoch = progress.epoch;
  loop.network.train();
  loop.parts.train();
  loop.loader.start_epoch(epoch);
  if (progress.step > 0) loop.loader.skip_to(progress.step);  // resumed part-way through
  const double start = now_seconds();
  const int64_t last = total_steps(loop.train, loop.loader.batches_per_epoch());
  double data_wait = 0;
  while (progress.global_step < last) {
    const double wait_start = now_seconds();
    const auto batch = loop.loader.next();
    data_wait += now_seconds() - wait_start;
    if (!batch) break;
    const double step_start = now_seconds();
    const std::vector<double> lrs = loop.optimizer.learning_rates();
    int signal = 0;
    const LossValues loss = train_step(loop, *batch, progress, signal);
    const int64_t images = batch->images.size(0) * loop.replicas.ranks();
    progress.partial.accumulate(loss, static_cast<double>(images));
    if (progress.reference_loss <= 0) progress.reference_loss = loss.get("total");
    progress.seen += images;
    report_step(loop, *batch, loss, lrs, progress, step_start);
    ++progress.step;
    ++progress.global_step;
    const int64_t every = loop.checkpoint_every;
    if (signal != 0 || (every > 0 && progress.global_step % every == 0))
      save_checkpoint(loop, progress);
    if (signal != 0) throw stopped(loop, signal, epoch, progress.step);
  }
  EpochStats stats;
  stats.epoch = epoch + 1;
  stats.loss = progress.partial.mean_over(static_cast<double>(progress.seen));
  stats.seconds = now_seconds() - start;
  stats.images_per_second = static_cast<double>(progress.seen) / stats.seconds;
  stats.data_wait_seconds = data_wait;
  progress.history.push_back(stats);
  progress = {epoch + 1,
              0,
              progress.global_step,
              LossValues(),
              0,
              progress.history,
              progress.reference_loss};
  save_checkpoint(loop, progress);
  char line[512];
  std::snprintf(line, sizeof line,
                "%s %s: epoch %lld/%lld loss %.4f (%s) %.0f img/s, %.1f%% of it waiting for data",
                loop.name.c_str(), loop.label.c_str(), static_cast<long long>(epoch + 1),
                static_cast<long long>(loop.train.epochs), stats.loss.get("total"),
                stats.loss.parts_text().c_str(), stats.images_per_second,
                100.0 * data_wait / stats.seconds);
  log_info(line);
  if (loop.on_epoch) loop.on_epoch(stats, loop.network);
}

}  // namespace

std::vector<EpochStats> run_training_loop(TrainingLoop& loop, RunProgress progress) {
  while (progress.epoch < loop.train.epochs) train_epoch(loop, progress);
  return progress.history;
}

}  // namespace amalgam

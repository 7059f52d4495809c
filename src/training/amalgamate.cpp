#include "training/amalgamate.h"

#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "data/augment.h"
#include "data/batch_loader.h"
#include "distributed/process_group.h"
#include "models/zoo.h"
#include "training/options_json.h"
#include "training/replicas.h"
#include "training/run_checkpoint.h"
#include "training/run_plan.h"
#include "training/teacher_targets.h"

namespace amalgam {

const std::vector<std::string>& resumable_fields() {
  // Threads change speed, not results beyond rounding; checkpoint_every and log_every only what
  // is written when; more epochs extend a run (the learning-rate schedule stretched over the new
  // total from the step where it stands).
  // A lower learning rate (and the divergence guard's bound) may continue a diverged run from its
  // last good checkpoint.
  static const std::vector<std::string> fields = {
      "/train/threads",    "/train/epochs",          "/train/lr",
      "/checkpoint_every", "/train/max_loss_growth", "/log_every"};
  return fields;
}

namespace {

// A checksum of the transfer images, so ranks on several hosts can check they read the same data.
std::string transfer_checksum(const TransferSet& transfer) {
  const at::Tensor images = transfer.images().contiguous();
  return std::to_string(crc32_of(images.data_ptr(), images.nbytes()));
}

// The CRC-32 of a teacher's file: a teacher replaced between a run and its --resume is caught.
uint32_t teacher_file_checksum(const Teacher& teacher) {
  if (teacher.file.empty()) return 0;  // built in memory
  const std::string bytes = read_whole_file(teacher.file);
  return crc32_of(bytes.data(), bytes.size());
}

// What must not change between a run and its resumption: the config without resumable_fields(),
// the teachers (their files' checksums too), the transfer set's size and the world size.
nlohmann::json run_fingerprint(const AmalgamateConfig& config, const std::vector<Teacher>& teachers,
                               const TransferSet& transfer, int64_t world_size) {
  nlohmann::json j = config;
  for (const auto& field : resumable_fields()) {
    const nlohmann::json::json_pointer pointer(field);
    j[pointer.parent_pointer()].erase(pointer.back());
  }
  for (const auto& t : teachers) {
    j["teachers"].push_back(t.path);
    j["teacher_checksums"].push_back(teacher_file_checksum(t));
  }
  j["transfer_images"] = transfer.size();
  j["world_size"] = world_size;
  return j;
}

// Everything one run trains with, built once by amalgamate().
struct Run {
  const AmalgamateConfig& config;
  const RunContext& context;
  NetworkImpl& student;
  ObjectiveImpl& objective;
  TeacherTargets& targets;
  BatchLoader& loader;
  ScheduledAdam& optimizer;
  Replicas& replicas;
  RunCheckpointer& checkpointer;
  c10::Device device;
  Precision precision;
};

// Stops the run at the first non-finite loss term, naming it and what survives of the run.
void check_finite(const LossValues& loss, int64_t epoch, int64_t step, const Run& run) {
  for (const auto& [term, value] : loss.terms())
    AMALGAM_CHECK(std::isfinite(value),
                  "amalgamate: loss term '" + term + "' is " + std::to_string(value) +
                      " at epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
                      " (try a lower --lr or --block-lr-mult)" + run.checkpointer.kept());
}

// Stops the run at a step whose total loss has grown past train.max_loss_growth times the run's
// first step's (at least 1, so a tiny first loss does not make ordinary noise a divergence),
// before the step updates anything: a finite but exploding loss (--lr 1e6 reached 2.8e14 in one
// epoch) would otherwise end in a saved, useless student.
void check_bounded(const LossValues& loss, const RunProgress& at, const Run& run) {
  const double growth = run.config.train.max_loss_growth;
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
  throw Error("amalgamate: the loss diverged at epoch " + std::to_string(at.epoch + 1) + ", step " +
              std::to_string(at.step) + " (" + text + "; lower --lr, or raise --max-loss-growth)" +
              run.checkpointer.kept());
}

// Stops the run when a gradient is NaN or Inf, before the optimiser applies it.
void check_finite_gradients(const Run& run, const RunProgress& at) {
  at::Tensor finite = torch::ones({}, torch::kBool);
  for (const auto* module : {static_cast<const torch::nn::Module*>(&run.student),
                             static_cast<const torch::nn::Module*>(&run.objective)})
    for (const auto& p : module->parameters())
      if (p.grad().defined()) finite = finite.logical_and(torch::isfinite(p.grad()).all().cpu());
  AMALGAM_CHECK(finite.item<bool>(),
                "amalgamate: a gradient is NaN or Inf at epoch " + std::to_string(at.epoch + 1) +
                    ", step " + std::to_string(at.step) + " (try a lower --lr or --block-lr-mult)" +
                    run.checkpointer.kept());
}

// The objective's terms on `images`: the student, the teachers run on the batch (when not
// cached) and the objective's own parts (adapters, common space) compute at the run's precision;
// what reaches the losses is float32 and the losses sum in float32 (method/losses.cpp).
LossTerms forward_loss(Run& run, const Batch& batch, const at::Tensor& clean,
                       const at::Tensor& images, const BatchContext& context) {
  AutocastGuard autocast(run.precision, run.device);
  std::vector<ModelOutput> targets =
      run.targets.for_batch(batch.indices, run.config.teachers_see_clean_images ? clean : images);
  at::Tensor input = images;
  if (run.config.channels_last) {
    for (auto& t : targets) t.features = t.features.contiguous(at::MemoryFormat::ChannelsLast);
    input = images.contiguous(at::MemoryFormat::ChannelsLast);
  }
  ModelOutput out = run.student.forward(input);
  if (run.precision != Precision::kFp32) {
    out.features = out.features.to(torch::kFloat32);
    out.logits = out.logits.to(torch::kFloat32);
    for (auto& t : targets) {
      t.features = t.features.to(torch::kFloat32);
      t.logits = t.logits.to(torch::kFloat32);
    }
  }
  return run.objective.loss(out, targets, context);
}

// One optimisation step on `batch`: augment, teacher targets, loss, agreed terms, update.
LossValues train_step(Run& run, const Batch& batch, const RunProgress& at, int& signal) {
  const int64_t epoch = at.epoch, step = at.step;
  const TrainOptions& train = run.config.train;
  const at::Tensor clean = batch.images.to(run.device);
  at::Tensor images = augment_batch(clean, train.augment, augment_seed(train.seed, epoch, step),
                                    run.replicas.first_image(batch.images.size(0)));
  run.optimizer.zero_grad();
  const double steps = static_cast<double>(train.epochs * run.loader.batches_per_epoch());
  const BatchContext context{run.replicas.gather(), batch.indices, at.global_step / steps};
  const LossTerms loss = forward_loss(run, batch, clean, images, context);
  LossValues values = loss.values();
  signal = stop_signal();
  run.replicas.agree(values, signal);
  check_finite(values, epoch + 1, step, run);
  check_bounded(values, at, run);
  loss.total.backward();
  run.replicas.average_gradients();
  check_finite_gradients(run, at);
  run.optimizer.step();
  return values;
}

void report_step(const Run& run, const Batch& batch, const LossValues& loss,
                 const std::vector<double>& lrs, const RunProgress& at, double started) {
  if (!run.context.hooks.on_step) return;
  StepRecord record;
  record.epoch = at.epoch;
  record.step = at.step;
  record.global_step = at.global_step;
  record.steps_per_epoch = run.loader.batches_per_epoch();
  record.indices = batch.indices;
  record.loss = loss;
  record.lrs = lrs;
  record.seconds = now_seconds() - started;
  run.context.hooks.on_step(record);
}

void save_checkpoint(Run& run, const RunProgress& progress) {
  // Every rank: BatchNorm statistics were tracked per shard.
  run.replicas.average_buffers({&run.student, &run.objective});
  run.checkpointer.save(progress);
}

Interrupted stopped(const Run& run, int signal, int64_t epoch, int64_t step) {
  const bool other_rank = run.replicas.ranks() > 1 && run.checkpointer.path().empty();
  return Interrupted(signal, "stopped by signal " + std::to_string(signal) + " after epoch " +
                                 std::to_string(epoch + 1) + " step " + std::to_string(step) +
                                 (!run.checkpointer.path().empty()
                                      ? "; checkpoint written to " + run.checkpointer.path()
                                  : other_rank ? " (rank 0 writes the run's checkpoint)"
                                               : " (no checkpoint: the run had no run directory)"));
}

// One epoch from where `progress` stands; its mean terms are appended to progress.history.
void train_epoch(Run& run, RunProgress& progress) {
  const int64_t epoch = progress.epoch;
  run.student.train();
  run.objective.train();
  run.loader.start_epoch(epoch);
  if (progress.step > 0) run.loader.skip_to(progress.step);  // resumed part-way through
  const double start = now_seconds();
  while (auto batch = run.loader.next()) {
    const double step_start = now_seconds();
    const std::vector<double> lrs = run.optimizer.learning_rates();
    int signal = 0;
    const LossValues loss = train_step(run, *batch, progress, signal);
    const int64_t images = batch->images.size(0) * run.replicas.ranks();
    progress.partial.accumulate(loss, static_cast<double>(images));
    if (progress.reference_loss <= 0) progress.reference_loss = loss.get("total");
    progress.seen += images;
    report_step(run, *batch, loss, lrs, progress, step_start);
    ++progress.step;
    ++progress.global_step;
    const int64_t every = run.config.checkpoint_every;
    if (signal != 0 || (every > 0 && progress.global_step % every == 0))
      save_checkpoint(run, progress);
    if (signal != 0) throw stopped(run, signal, epoch, progress.step);
  }
  EpochStats stats;
  stats.epoch = epoch + 1;
  stats.loss = progress.partial.mean_over(static_cast<double>(progress.seen));
  stats.seconds = now_seconds() - start;
  stats.images_per_second = static_cast<double>(progress.seen) / stats.seconds;
  progress.history.push_back(stats);
  progress = {epoch + 1,
              0,
              progress.global_step,
              LossValues(),
              0,
              progress.history,
              progress.reference_loss};
  save_checkpoint(run, progress);
  char line[512];
  std::snprintf(line, sizeof line, "amalgamate %s: epoch %lld/%lld loss %.4f (%s) %.0f img/s",
                method_of(run.config.objective).name, static_cast<long long>(epoch + 1),
                static_cast<long long>(run.config.train.epochs), stats.loss.get("total"),
                stats.loss.parts_text().c_str(), stats.images_per_second);
  log_info(line);
  if (run.context.on_epoch) run.context.on_epoch(stats, run.student);
}

}  // namespace

void check_ranks_agree(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                       const AmalgamateConfig& config, ProcessGroup* group) {
  if (group == nullptr) return;
  require_even_shards(config.train.batch_size, group->size());
  AMALGAM_CHECK(transfer.size() >= config.train.batch_size,
                "transfer set: " + std::to_string(transfer.size()) +
                    " images, fewer than one --batch-size (" +
                    std::to_string(config.train.batch_size) + ") to split over the ranks");
  // checkpoint_every, epochs, lr and max_loss_growth are left out of the fingerprint (they may
  // change on resume) but decide when the ranks meet to average BatchNorm statistics, how many
  // steps they take and what each step does.
  nlohmann::json fingerprint = run_fingerprint(config, teachers, transfer, group->size());
  fingerprint["train"].erase("device");  // each rank may have a GPU of its own
  char step_options[128];
  std::snprintf(step_options, sizeof step_options, " lr %.17g max_loss_growth %.17g",
                config.train.lr, config.train.max_loss_growth);
  group->require_same(fingerprint.dump() + step_options + " checkpoint_every " +
                          std::to_string(config.checkpoint_every) + " epochs " +
                          std::to_string(config.train.epochs) + " transfer crc " +
                          transfer_checksum(transfer),
                      "options, teachers or transfer images");
}

AmalgamationResult amalgamate(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                              const AmalgamateConfig& config, const RunContext& context) {
  validate(config.train);
  validate(config.objective);
  check_teachers_compatible(teachers);
  const c10::Device device = parse_device(config.train.device);
  ProcessGroup* group = context.group.get();
  check_ranks_agree(teachers, transfer, config, group);
  const double start = now_seconds();

  AmalgamationResult result;
  torch::manual_seed(config.train.seed);
  RunPlan plan = plan_amalgamation(teachers, config, context.student_network, device);
  result.head = plan.head;
  result.student_spec = plan.student_spec;
  result.student = plan.student;
  NetworkImpl& student = *result.student;
  TeacherTargets targets(teachers, transfer, config, context.cache, group, device);
  ObjectiveSetup& setup = plan.objective;
  setup.transfer_logits = [&] { return targets.transfer_logits(transfer); };
  result.objective = make_objective(setup);
  result.objective->to(device);
  std::vector<ParamGroup> groups = {{student.backbone_parameters(), 1.0},
                                    {student.head_parameters(), config.train.head_lr_mult}};
  for (const auto& g : result.objective->parameter_groups()) groups.push_back(g);

  BatchLoaderOptions loader_options;
  loader_options.batch_size = config.train.batch_size;
  loader_options.seed = config.train.seed;
  // MMD needs at least two samples per side to be informative.
  loader_options.drop_last = transfer.size() > config.train.batch_size || group != nullptr;
  loader_options.shard_count = group != nullptr ? group->size() : 1;
  loader_options.shard_index = group != nullptr ? group->rank() : 0;
  BatchLoader loader(transfer.images(), at::Tensor(), loader_options);
  ScheduledAdam optimizer(groups, config.train, loader.batches_per_epoch());
  if (config.channels_last) {
    to_channels_last(student);
    to_channels_last(*result.objective);
  }
  if (context.hooks.on_start) context.hooks.on_start(student, *result.objective);

  const int64_t world_size = group != nullptr ? group->size() : 1;
  RunCheckpointer checkpointer(context.checkpoint_path,
                               {&student, result.objective.get(), &optimizer},
                               run_fingerprint(config, teachers, transfer, world_size));
  RunProgress progress;
  if (context.resume) {
    progress = checkpointer.restore(group);
    log_info("amalgamate: resuming at epoch " + std::to_string(progress.epoch + 1) + ", step " +
             std::to_string(progress.step) + " from " + context.checkpoint_path);
  }
  Replicas replicas(group);
  replicas.start(student, {&student, result.objective.get()}, groups, config.sync_batchnorm);
  const Precision precision = parse_precision(config.train.precision, device);
  if (precision != Precision::kFp32)
    log_info(std::string("amalgamate: student computes in ") + precision_name(precision) +
             " (autocast; float32 weights, optimiser state and losses)");
  Run run{config,   context,      student, *result.objective, targets, loader, optimizer,
          replicas, checkpointer, device,  precision};
  while (progress.epoch < config.train.epochs) train_epoch(run, progress);
  result.history = progress.history;
  student.eval();
  result.objective->eval();
  replicas.finish(student);
  // Only rank 0 keeps (and writes) the student; the other ranks' copies are discarded.
  const bool keeps_student = !group || group->rank() == 0;
  if (const auto shares = result.objective->gate_shares(); keeps_student && !shares.empty())
    result.gate = calibrate_task_gate(student, transfer.images(), result.head, shares);
  result.seconds = now_seconds() - start;
  return result;
}

}  // namespace amalgam

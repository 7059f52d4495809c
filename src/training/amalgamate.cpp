#include "training/amalgamate.h"

#include <torch/torch.h>

#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "data/batch_loader.h"
#include "distributed/process_group.h"
#include "models/zoo.h"
#include "training/options_json.h"
#include "training/replicas.h"
#include "training/run_checkpoint.h"
#include "training/run_plan.h"
#include "training/teacher_targets.h"
#include "training/training_loop.h"

namespace amalgam {

namespace {

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
  nlohmann::json j = without_resumable_fields(config);
  for (const auto& t : teachers) {
    j["teachers"].push_back(t.path);
    j["teacher_checksums"].push_back(teacher_file_checksum(t));
  }
  j["transfer_images"] = transfer.size();
  j["world_size"] = world_size;
  return j;
}

// The objective's terms on one batch: the student, the teachers run on the batch (when not
// cached) and the objective's own parts (adapters, common space) compute at the run's precision;
// what reaches the losses is float32 and the losses sum in float32 (method/losses.cpp).
LossTerms amalgamation_loss(const AmalgamateConfig& config, Precision precision, c10::Device device,
                            NetworkImpl& student, ObjectiveImpl& objective,
                            const TeacherTargets& teachers, const Batch& batch,
                            const at::Tensor& clean, const at::Tensor& images,
                            const BatchContext& context) {
  AutocastGuard autocast(precision, device);
  std::vector<ModelOutput> targets =
      teachers.for_batch(batch.indices, config.teachers_see_clean_images ? clean : images);
  at::Tensor input = images;
  if (config.channels_last) {
    for (auto& t : targets) t.features = t.features.contiguous(at::MemoryFormat::ChannelsLast);
    input = images.contiguous(at::MemoryFormat::ChannelsLast);
  }
  ModelOutput out = student.forward(input);
  if (precision != Precision::kFp32) {
    out.features = out.features.to(torch::kFloat32);
    out.logits = out.logits.to(torch::kFloat32);
    for (auto& t : targets) {
      t.features = t.features.to(torch::kFloat32);
      t.logits = t.logits.to(torch::kFloat32);
    }
  }
  return objective.loss(out, targets, context);
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
                          transfer.checksum(),
                      "options, teachers or transfer images");
}

void validate(const AmalgamateConfig& config) {
  validate(config.train);
  validate(config.objective);
  AMALGAM_CHECK(config.train.augment.mixup_alpha == 0 || !config.teachers_see_clean_images,
                "--mixup: the teachers must see the mixed image the student imitates them on; "
                "drop --teachers-see-clean-images");
  AMALGAM_CHECK(!config.train.augment.random_resized_crop || !config.teachers_see_clean_images,
                "--random-resized-crop: the teachers see the student's crop (the crop is the "
                "view both are matched on); drop --teachers-see-clean-images");
}

AmalgamationResult amalgamate(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                              const AmalgamateConfig& given, const RunContext& context) {
  validate(given);
  AmalgamateConfig config = given;  // with the epochs train.min_steps asks for
  config.train.epochs = epochs_for(given.train, transfer.size());
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
  setup.route_each_batch = transfer.streams();
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
  loader_options.augment = &config.train.augment;
  // A streamed set decodes each batch; RandomResizedCrop crops each image where it is fetched.
  BatchLoader loader =
      transfer.streams() || config.train.augment.random_resized_crop
          ? BatchLoader([&](const std::vector<int64_t>& rows,
                            const BatchCrops& crops) { return transfer.input_rows(rows, crops); },
                        transfer.size(), loader_options)
          : BatchLoader(transfer.images(), at::Tensor(), loader_options);
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
  ObjectiveImpl& objective = *result.objective;
  TrainingLoop loop{"amalgamate",
                    method_of(config.objective).name,
                    config.train,
                    config.checkpoint_every,
                    student,
                    objective,
                    [&](const Batch& batch, const at::Tensor& clean, const at::Tensor& images,
                        const BatchContext& batch_context) {
                      return amalgamation_loss(config, precision, device, student, objective,
                                               targets, batch, clean, images, batch_context);
                    },
                    loader,
                    optimizer,
                    replicas,
                    checkpointer,
                    device,
                    context.hooks.on_step,
                    context.on_epoch};
  result.history = run_training_loop(loop, progress);
  student.eval();
  result.objective->eval();
  replicas.finish(student);
  // Only rank 0 keeps (and writes) the student; the other ranks' copies are discarded.
  const bool keeps_student = !group || group->rank() == 0;
  if (const auto shares = result.objective->gate_shares(); keeps_student && !shares.empty())
    result.gate =
        calibrate_task_gate(student, transfer.sample(kCalibrationImages), result.head, shares);
  result.seconds = now_seconds() - start;
  return result;
}

}  // namespace amalgam

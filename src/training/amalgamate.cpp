#include "training/amalgamate.h"

#include <torch/torch.h>

#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "data/augment.h"
#include "data/batch_loader.h"
#include "distributed/autograd_collectives.h"
#include "distributed/process_group.h"
#include "distributed/replica_sync.h"
#include "distributed/sharded_cache.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"
#include "training/options_json.h"
#include "training/run_checkpoint.h"

namespace amalgam {
namespace {

// The loss terms of one step as numbers, in the order of kTermNames.
constexpr const char* kTermNames[] = {"total", "kd", "mmd", "recon", "hint"};
using TermValues = std::array<double, 5>;

TermValues term_values(const LossTerms& terms) {
  return {terms.total.item<double>(), terms.kd.item<double>(), terms.mmd.item<double>(),
          terms.recon.item<double>(), terms.hint.item<double>()};
}

// Stops the run at the first non-finite loss term; `kept` says what survives of the run.
void check_finite(const TermValues& values, int64_t epoch, int64_t step,
                  const std::function<std::string()>& kept) {
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i]))
      throw Error("amalgamate: loss term '" + std::string(kTermNames[i]) + "' is " +
                  std::to_string(values[i]) + " at epoch " + std::to_string(epoch) + ", step " +
                  std::to_string(step) + " (try a lower --lr or --block-lr-mult)" + kept());
  }
}

// Data-parallel runs: the mean of every rank's terms (the whole batch's loss), and whether any
// rank was asked to stop (the largest signal number; 0 = none), agreed by all ranks.
void agree_on_step(ProcessGroup& group, TermValues& values, int& signal) {
  std::vector<at::Tensor> sums = {
      torch::tensor(std::vector<double>(values.begin(), values.end()), torch::kFloat64)};
  group.all_reduce_sum(sums);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = sums[0][static_cast<int64_t>(i)].item<double>() / group.size();
  at::Tensor stop = torch::tensor({static_cast<int64_t>(signal)}, torch::kInt64);
  group.all_reduce_max(stop);
  signal = static_cast<int>(stop.item<int64_t>());
}

// A checksum of the transfer images, so ranks on several hosts can check they read the same data.
std::string transfer_checksum(const TransferSet& transfer) {
  const at::Tensor images = transfer.images().contiguous();
  uLong crc = crc32(0L, Z_NULL, 0);
  const auto* bytes = static_cast<const Bytef*>(images.data_ptr());
  for (int64_t done = 0, total = images.nbytes(); done < total;) {
    const auto chunk = static_cast<uInt>(std::min<int64_t>(total - done, int64_t{1} << 30));
    crc = crc32(crc, bytes + done, chunk);
    done += chunk;
  }
  return std::to_string(crc);
}

// What must not change between a run and its resumption (threads may: results then match to
// rounding instead of bitwise).
nlohmann::json run_fingerprint(const AmalgamateOptions& options,
                               const std::vector<Teacher>& teachers, const TransferSet& transfer) {
  nlohmann::json j = options;
  j["train"].erase("threads");
  j.erase("checkpoint_every");
  j.erase("log_every");
  for (const auto& t : teachers) j["teachers"].push_back(t.path);
  j["transfer_images"] = transfer.size();
  j["world_size"] = options.group ? options.group->size() : 1;
  return j;
}

}  // namespace

void check_ranks_agree(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                       const AmalgamateOptions& options) {
  ProcessGroup* group = options.group.get();
  if (group == nullptr) return;
  require_even_shards(options.train.batch_size, group->size());
  require(transfer.size() >= options.train.batch_size,
          "transfer set: " + std::to_string(transfer.size()) +
              " images, fewer than one --batch-size (" + std::to_string(options.train.batch_size) +
              ") to split over the ranks");
  // checkpoint_every is left out of the fingerprint (it may change on resume) but decides when
  // the ranks meet to average BatchNorm statistics.
  nlohmann::json fingerprint = run_fingerprint(options, teachers, transfer);
  fingerprint["train"].erase("device");  // each rank may have a GPU of its own
  group->require_same(fingerprint.dump() + " checkpoint_every " +
                          std::to_string(options.checkpoint_every) + " transfer crc " +
                          transfer_checksum(transfer),
                      "options, teachers or transfer images");
}

AmalgamationResult amalgamate(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                              const AmalgamateOptions& options, const EpochCallback& on_epoch,
                              const TeacherOutputCache* cache, const TrainingHooks& hooks) {
  validate(options.train);
  validate(options.objective);
  check_teachers_compatible(teachers);
  const c10::Device device = parse_device(options.train.device);
  const InputSpec& input = teachers.front().network->input();
  require(transfer.images().size(1) == input.channels &&
              transfer.images().size(2) == input.height && transfer.images().size(3) == input.width,
          "transfer set: images are " + std::to_string(transfer.images().size(1)) + "x" +
              std::to_string(transfer.images().size(2)) + "x" +
              std::to_string(transfer.images().size(3)) + " but the teachers take " +
              std::to_string(input.channels) + "x" + std::to_string(input.height) + "x" +
              std::to_string(input.width));
  ProcessGroup* group = options.group.get();
  check_ranks_agree(teachers, transfer, options);
  const double start = now_seconds();

  AmalgamationResult result;
  for (const auto& t : teachers) result.head.tasks.push_back(t.task);
  result.student_spec = options.student;
  result.student_spec.input = input;
  result.student_spec.num_classes = result.head.total();

  torch::manual_seed(options.train.seed);
  if (options.student_network) {
    result.student = options.student_network;
    result.student_spec.arch = "torchscript";
    if (auto* scripted = dynamic_cast<TorchScriptNetworkImpl*>(result.student.get()))
      result.student_spec.layer = scripted->layer();
    result.student_spec.input = result.student->input();
    const InputSpec& own = result.student->input();
    require(
        own.channels == input.channels && own.height == input.height && own.width == input.width,
        "--student: takes " + std::to_string(own.channels) + "x" + std::to_string(own.height) +
            "x" + std::to_string(own.width) + " images but the teachers take " +
            std::to_string(input.channels) + "x" + std::to_string(input.height) + "x" +
            std::to_string(input.width));
  } else {
    result.student = make_network(result.student_spec);
  }
  NetworkImpl& student = *result.student;
  student.to(device);
  for (auto& p : student.parameters()) p.set_requires_grad(true);
  {
    torch::NoGradGuard no_grad;
    student.eval();
    const auto probe = student.forward(torch::zeros({1, input.channels, input.height, input.width},
                                                    torch::TensorOptions().device(device)));
    require(probe.logits.size(1) == result.head.total(),
            "--student: produces " + std::to_string(probe.logits.size(1)) +
                " logits but the teachers have " + std::to_string(result.head.total()) +
                " classes in all");
    require(probe.features.defined(), "--student: no feature map (give PATH:LAYER)");
  }
  std::vector<ParamGroup> groups = {{student.backbone_parameters(), 1.0},
                                    {student.head_parameters(), options.train.head_lr_mult}};
  if (options.objective.method == "cfl") {
    CommonFeatureBlockOptions block_options;
    for (const auto& t : teachers) block_options.teacher_shapes.push_back(t.feature_shape);
    block_options.student_shape = feature_shape(student);
    block_options.common_channels = options.common_channels;
    block_options.extractor_blocks = options.extractor_blocks;
    result.block = CommonFeatureBlock(block_options);
    result.block->to(device);
    if (options.fixed_common_space) {
      // Ablation: align layers and extractor stay at their random initialisation; only the
      // decoders learn (and they do not reach the student).
      for (auto& p : result.block->common_space_parameters()) p.set_requires_grad(false);
      groups.push_back({result.block->decoder_parameters(), options.train.block_lr_mult});
    } else {
      groups.push_back({result.block->parameters(), options.train.block_lr_mult});
    }
  }
  if (options.objective.method == "fitnet") {
    std::vector<std::vector<int64_t>> shapes;
    for (const auto& t : teachers) shapes.push_back(t.feature_shape);
    result.hints = HintAdapters(feature_shape(student), shapes);
    result.hints->to(device);
    groups.push_back({result.hints->parameters(), options.train.block_lr_mult});
  }

  TeacherOutputCache own_cache;
  const bool augmenting = options.train.augment.enabled();
  if (augmenting) {
    // Teachers must see the same augmented images as the student: no cached outputs.
    cache = nullptr;
    log_info("amalgamate: augmentation on, teachers run on every batch");
  }
  if (cache == nullptr && options.cache_teachers && !augmenting) {
    const int64_t bytes = teacher_cache_bytes(teachers, transfer.size());
    if (bytes <= options.teacher_cache_limit) {
      const double cache_start = now_seconds();
      own_cache = group != nullptr
                      ? cache_teacher_outputs_sharded(teachers, transfer.images(), kInferenceBatch,
                                                      device, *group)
                      : cache_teacher_outputs(teachers, transfer.images(), kInferenceBatch, device);
      cache = &own_cache;
      log_info("amalgamate: cached teacher outputs (" + std::to_string(bytes >> 20) + " MiB) in " +
               std::to_string(now_seconds() - cache_start) + " s");
    } else {
      log_info("amalgamate: teacher outputs need " + std::to_string(bytes >> 20) +
               " MiB, over the cache limit; teachers run on every batch");
    }
  }
  if (cache != nullptr)
    require(!cache->outputs.empty() && cache->outputs.size() == teachers.size() &&
                cache->outputs.front().logits.size(0) == transfer.size(),
            "amalgamate: the teacher cache does not match the teachers and transfer set");

  BatchLoaderOptions loader_options;
  loader_options.batch_size = options.train.batch_size;
  loader_options.seed = options.train.seed;
  // MMD needs at least two samples per side to be informative.
  loader_options.drop_last = transfer.size() > options.train.batch_size || group != nullptr;
  if (group != nullptr) {
    loader_options.shard_count = group->size();
    loader_options.shard_index = group->rank();
  }
  BatchLoader loader(transfer.images(), at::Tensor(), loader_options);
  ScheduledAdam optimizer(groups, options.train, loader.batches_per_epoch());

  const bool channels_last = options.channels_last;
  if (channels_last) {
    to_channels_last(student);
    if (result.block) to_channels_last(*result.block);
    if (result.hints) to_channels_last(*result.hints);
  }
  if (hooks.on_start) hooks.on_start(student, result.block ? result.block.get() : nullptr);

  const RunModules modules{&student, result.block ? result.block.get() : nullptr,
                           result.hints ? result.hints.get() : nullptr, &optimizer};
  const nlohmann::json fingerprint = run_fingerprint(options, teachers, transfer);
  RunProgress progress;
  if (options.resume) {
    if (group != nullptr) {
      // Rank 0 alone keeps the run directory; the others restore from its bytes.
      const std::string bytes = group->broadcast_bytes(
          group->rank() == 0 ? read_whole_file(options.checkpoint_path) : "");
      progress = load_run_checkpoint_bytes(bytes, options.checkpoint_path, modules, fingerprint);
    } else {
      progress = load_run_checkpoint(options.checkpoint_path, modules, fingerprint);
    }
    result.history = progress.history;
    log_info("amalgamate: resuming at epoch " + std::to_string(progress.epoch + 1) + ", step " +
             std::to_string(progress.step) + " from " + options.checkpoint_path);
  }
  std::vector<torch::nn::Module*> trained = {&student};
  if (result.block) trained.push_back(result.block.get());
  if (result.hints) trained.push_back(result.hints.get());
  std::optional<GradientAverager> averager;
  if (group != nullptr && options.sync_batchnorm) {
    const int64_t layers = set_statistics_gather(
        student, [group](const at::Tensor& local) { return stack_over_ranks(local, *group); });
    require(layers > 0,
            "--sync-batchnorm: the student has no zoo BatchNorm layers to synchronise "
            "(a TorchScript student's BatchNorm stays per rank)");
  }
  if (group != nullptr) {
    for (auto* m : trained) broadcast_module_state(*group, *m);
    std::vector<at::Tensor> parameters;
    for (const auto& g : groups)
      for (const auto& p : g.params)
        if (p.requires_grad()) parameters.push_back(p);
    averager.emplace(*group, parameters);
  }
  const BatchGather gather = group == nullptr ? BatchGather() : [group](const at::Tensor& local) {
    return gather_batch(local, *group);
  };
  const int64_t ranks = group != nullptr ? group->size() : 1;
  int64_t checkpointed_step = options.resume ? progress.global_step : -1;
  const auto checkpoint = [&](const RunProgress& p) {
    // Every rank: BatchNorm statistics were tracked per shard.
    if (group != nullptr)
      for (auto* m : trained) average_buffers(*group, *m);
    if (options.checkpoint_path.empty()) return;
    save_run_checkpoint(options.checkpoint_path, modules, p, fingerprint);
    checkpointed_step = p.global_step;
  };
  const auto kept = [&]() -> std::string {
    if (options.checkpoint_path.empty()) return "";
    if (checkpointed_step < 0) return "; no checkpoint had been written yet";
    return "; the last good checkpoint, after step " + std::to_string(checkpointed_step) +
           " of the run, is kept in " + options.checkpoint_path;
  };
  int64_t global_step = progress.global_step;
  for (int64_t epoch = progress.epoch; epoch < options.train.epochs; ++epoch) {
    student.train();
    if (result.block) result.block->train();
    if (result.hints) result.hints->train();
    loader.start_epoch(epoch);
    EpochStats stats;
    int64_t seen = 0, step = 0;
    if (epoch == progress.epoch && progress.step > 0) {
      stats = progress.partial;
      seen = progress.seen;
      step = progress.step;
      loader.skip_to(step);
    }
    stats.epoch = epoch + 1;
    const double epoch_start = now_seconds();
    while (auto batch = loader.next()) {
      const double step_start = hooks.on_step ? now_seconds() : 0.0;
      const at::Tensor images =
          augment_batch(batch->images.to(device), options.train.augment,
                        augment_seed(options.train.seed, epoch, step),
                        group != nullptr ? group->rank() * batch->images.size(0) : 0);
      std::vector<ModelOutput> targets =
          cache ? cache->gather(batch->indices, device) : teacher_outputs(teachers, images);
      if (channels_last)
        for (auto& t : targets) t.features = t.features.contiguous(at::MemoryFormat::ChannelsLast);
      optimizer.zero_grad();
      const ModelOutput out = student.forward(
          channels_last ? images.contiguous(at::MemoryFormat::ChannelsLast) : images);
      const LossTerms terms =
          amalgamation_loss(out, targets, result.block ? result.block.get() : nullptr,
                            options.objective, result.hints ? result.hints.get() : nullptr, gather);
      TermValues values = term_values(terms);
      int signal = stop_signal();
      if (group != nullptr) agree_on_step(*group, values, signal);
      check_finite(values, epoch + 1, step, kept);
      terms.total.backward();
      if (averager) averager->average();
      const std::vector<double> lrs = optimizer.learning_rates();
      optimizer.step();
      const double b = static_cast<double>(images.size(0) * ranks);
      stats.total += values[0] * b;
      stats.kd += values[1] * b;
      stats.mmd += values[2] * b;
      stats.recon += values[3] * b;
      seen += images.size(0) * ranks;
      if (hooks.on_step) {
        StepRecord record;
        record.epoch = epoch;
        record.step = step;
        record.global_step = global_step;
        record.indices = batch->indices;
        record.total = values[0];
        record.kd = values[1];
        record.mmd = values[2];
        record.recon = values[3];
        record.hint = values[4];
        record.lrs = lrs;
        record.steps_per_epoch = loader.batches_per_epoch();
        record.seconds = now_seconds() - step_start;
        hooks.on_step(record);
      }
      ++step;
      ++global_step;
      if (signal != 0 ||
          (options.checkpoint_every > 0 && global_step % options.checkpoint_every == 0))
        checkpoint({epoch, step, global_step, stats, seen, result.history});
      if (signal != 0)
        throw Interrupted(signal, "stopped by signal " + std::to_string(signal) + " after epoch " +
                                      std::to_string(epoch + 1) + " step " + std::to_string(step) +
                                      (!options.checkpoint_path.empty()
                                           ? "; checkpoint written to " + options.checkpoint_path
                                       : group != nullptr && group->rank() != 0
                                           ? " (rank 0 writes the run's checkpoint)"
                                           : " (no checkpoint: the run had no run directory)"));
    }
    stats.total /= seen;
    stats.kd /= seen;
    stats.mmd /= seen;
    stats.recon /= seen;
    stats.seconds = now_seconds() - epoch_start;
    stats.images_per_second = seen / stats.seconds;
    result.history.push_back(stats);
    checkpoint({epoch + 1, 0, global_step, EpochStats{}, 0, result.history});
    char line[256];
    std::snprintf(
        line, sizeof line,
        "amalgamate %s: epoch %lld/%lld loss %.4f (kd %.4f mmd %.4f recon %.4f) %.0f img/s",
        options.objective.method.c_str(), static_cast<long long>(epoch + 1),
        static_cast<long long>(options.train.epochs), stats.total, stats.kd, stats.mmd, stats.recon,
        stats.images_per_second);
    log_info(line);
    if (on_epoch) on_epoch(stats, student);
  }
  student.eval();
  if (result.block) result.block->eval();
  set_statistics_gather(student, {});  // the group is the run's; the student outlives it
  result.seconds = now_seconds() - start;
  return result;
}

}  // namespace amalgam

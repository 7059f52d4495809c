// amalgam: the command-line front end. It declares the options of every command and dispatches to
// the library; nothing else happens here.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "app/commands.h"
#include "app/shard_command.h"
#include "command_line.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/names.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "experiments/bench.h"
#include "experiments/demo.h"
#include "experiments/reproduce.h"
#include "method/objective.h"
#include "objective_options.h"
#include "teachers/conventions.h"
#include "training/options_json.h"

namespace {

using namespace amalgam;

// What the front end knows beyond the options: the arguments (the launcher re-runs them) and
// the prefix of error lines (a data-parallel rank names itself).
struct CliState {
  std::vector<std::string> args;  ///< the command line without the program, --config expanded
  std::string who;                ///< "rank N: " in a data-parallel rank, else ""
  bool verbose = false;           ///< -v
};

// A registered command: runs it once the command line is parsed.
using Runner = std::function<int()>;

// ---- Option groups shared by several commands, each declared once. ----

void add_config_option(CLI::App* cmd) {
  // Read before parsing (arguments_with_config); declared here for --help.
  cmd->add_option("--config", "JSON file of this command's options (the command line wins)");
}

void add_runtime_options(CLI::App* cmd, std::string& device, int& threads) {
  cmd->add_option("--device", device, "cpu or cuda[:N]")->capture_default_str();
  cmd->add_option("--threads", threads, "Intra-op threads (0 = all cores)")->capture_default_str();
}

void add_json_option(CLI::App* cmd, std::string& path, const std::string& what) {
  cmd->add_option("--json", path, what);
}

// The data options as typed; resolved() turns them into the library's DataOptions.
struct CliData {
  DataOptions data;
  std::string on_bad_image = "fail";
  std::string input_size;
};

void add_input_options(CLI::App* cmd, CliData& c) {
  cmd->add_option("--input-size", c.input_size,
                  "Input HxW (or N for NxN) of TorchScript models without a sidecar, and of "
                  "decoded images");
  cmd->add_option("--channels", c.data.input.channels, "Input channels (1 or 3) of the same");
  cmd->add_option("--mean", c.data.input.mean,
                  "Per-channel mean of the same (one value or one each)")
      ->delimiter(',');
  cmd->add_option("--std", c.data.input.std, "Per-channel std of the same (one value or one each)")
      ->delimiter(',');
}

void add_data_options(CLI::App* cmd, CliData& c) {
  DataSource& s = c.data.source;
  cmd->add_option("--data", s.dirs,
                  "IDX folder, or image folder(s): a tree of images (amalgamate) or "
                  "root/<class>/ images (teach, eval); for amalgamate also tar shards "
                  "('DIR/shard-{0000..0099}.tar'); repeat to combine")
      ->default_str(s.dirs.front());
  cmd->add_option("--val-size", s.val_size,
                  "Training images held out for validation (image folders: a tenth)")
      ->capture_default_str();
  cmd->add_option("--split-seed", s.split_seed, "Seed of the train/validation split")
      ->capture_default_str();
  cmd->add_option("--limit", s.limit, "Use at most this many training images (0 = all)")
      ->capture_default_str();
  cmd->add_option("--on-bad-image", c.on_bad_image,
                  "An unreadable image file: skip (report it) or fail")
      ->capture_default_str();
  cmd->add_option("--image-memory", s.image_memory_mib,
                  "Image folders: hold the decoded transfer set in memory up to this many MiB; "
                  "a larger one streams from disk, decoded per batch")
      ->capture_default_str();
  cmd->add_option("--workers", s.workers,
                  "Threads decoding a streamed transfer set's batches (0 = the cores the "
                  "computation leaves, at least 1)")
      ->capture_default_str();
  add_input_options(cmd, c);
}

// --data values with WebDataset's brace ranges ('shards/train-{0000..0099}.tar') expanded.
std::vector<std::string> expanded_sources(const std::vector<std::string>& values) {
  std::vector<std::string> sources;
  for (const auto& value : values)
    for (auto& source : expand_shard_pattern(value, "--data")) sources.push_back(std::move(source));
  return sources;
}

// Resolves the textual data options once parsing is done.
DataOptions resolved(const CliData& c) {
  DataOptions d = c.data;
  d.source.dirs = expanded_sources(c.data.source.dirs);
  d.source.on_bad_image = parse_bad_image_policy(c.on_bad_image);
  AMALGAM_CHECK(
      d.source.image_memory_mib >= 0 && d.source.image_memory_mib <= kUnlimitedImageMemory,
      "--image-memory: must be >= 0 and <= " + std::to_string(kUnlimitedImageMemory) + " (MiB)");
  AMALGAM_CHECK(d.source.workers >= 0, "--workers: must be >= 0 (0 = automatic)");
  if (!c.input_size.empty()) parse_input_size(c.input_size, d.input);
  AMALGAM_CHECK(d.input.channels == 0 || d.input.channels == 1 || d.input.channels == 3,
                "--channels: must be 1 or 3");
  return d;
}

void add_train_options(CLI::App* cmd, TrainOptions& t, std::string& out) {
  cmd->add_option("--out", out, "Run directory (default: runs/<command>-<time>)");
  cmd->add_option("--epochs", t.epochs, "Training epochs")->capture_default_str();
  cmd->add_option("--batch-size", t.batch_size, "Images per step")->capture_default_str();
  cmd->add_option("--lr", t.lr, "Adam learning rate (backbone)")->capture_default_str();
  cmd->add_option("--head-lr-mult", t.head_lr_mult, "Head learning rate = lr x this")
      ->capture_default_str();
  cmd->add_option("--weight-decay", t.weight_decay, "Adam weight decay")->capture_default_str();
  const std::map<std::string, Schedule> schedules = {
      {"cosine", Schedule::kCosine}, {"step", Schedule::kStep}, {"constant", Schedule::kConstant}};
  cmd->add_option("--schedule", t.schedule, "Learning-rate schedule: cosine|step|constant")
      ->transform(CLI::CheckedTransformer(schedules))
      ->default_str("cosine");
  cmd->add_option("--step-epochs", t.step_epochs, "Step schedule: epochs between decays")
      ->capture_default_str();
  cmd->add_option("--gamma", t.gamma, "Step schedule: decay factor")->capture_default_str();
  cmd->add_option("--seed", t.seed, "Seed of initialisation and data order")->capture_default_str();
  add_runtime_options(cmd, t.device, t.threads);
  cmd->add_option("--precision", t.precision,
                  "fp32, bf16 (autocast; float32 weights and losses) or auto (bf16 where the "
                  "device computes it natively: AVX-512 BF16 or AMX CPUs, CUDA)")
      ->capture_default_str();
  cmd->add_option("--crop-padding", t.augment.crop_padding,
                  "Augment: random crop after zero padding by this many pixels (0 = off)")
      ->capture_default_str();
  cmd->add_flag("--flip", t.augment.horizontal_flip, "Augment: random horizontal flips");
}

void add_model_options(CLI::App* cmd, ModelSpec& m, const std::string& prefix) {
  cmd->add_option("--" + prefix + "width", m.width, "Channels of the first stage")
      ->capture_default_str();
  cmd->add_option("--" + prefix + "depth", m.depth, "Blocks (or convs) per stage")
      ->capture_default_str();
  cmd->add_option("--" + prefix + "stages", m.stages, "Stages (each after the first halves size)")
      ->capture_default_str();
  cmd->add_option("--" + prefix + "expansion", m.expansion, "mobilenetv2 expansion factor")
      ->capture_default_str();
}

// Without --data, commands read Fashion-MNIST; a user's own TorchScript networks (PATH.pt:LAYER)
// almost never belong to it, so there --data must be said.
void require_data_for_user_models(CLI::App* cmd, const std::vector<std::string>& refs) {
  if (cmd->count("--data") > 0) return;
  for (const std::string& text : refs) {
    const ModelRef ref = parse_model_ref(text);
    AMALGAM_CHECK(ref.layer.empty() && !ref.has_options(),
                  "--data: required with TorchScript networks such as " + text +
                      " (without it amalgam would read Fashion-MNIST from " +
                      DataSource().dirs.front() + ")");
  }
}

void add_distributed_options(CLI::App* cmd, AmalgamateCommand& c) {
  // Data parallelism (c10d/Gloo): --batch-size stays the whole step's batch.
  cmd->add_option("--nproc", c.nproc,
                  "Start this many ranks on this host (0 = run in this process)")
      ->capture_default_str();
  cmd->add_option("--world-size", c.dist.world_size, "Ranks in the run, over all hosts")
      ->capture_default_str();
  cmd->add_option("--rank", c.dist.rank, "This process's rank (with --nproc: the first one here)")
      ->capture_default_str();
  cmd->add_option("--dist-url", c.dist.url,
                  "tcp://HOST:PORT where rank 0 meets the others (--nproc alone: a free "
                  "loopback port)");
  cmd->add_option("--dist-timeout", c.dist.timeout_s,
                  "Seconds to wait for a rank before failing the run")
      ->capture_default_str();
  cmd->add_option("--dist-iface", c.dist.interface,
                  "Network interface for the ranks' traffic (default: the one routing to rank 0)");
  cmd->add_flag("--sync-batchnorm", c.config.sync_batchnorm,
                "Data-parallel: the student's BatchNorm uses the whole batch's moments");
}

// torchrun and SLURM describe each rank in environment variables: what the flags leave unset
// comes from there (a CUDA run's rank takes the GPU LOCAL_RANK names).
void apply_launch_environment(const CLI::App& cmd, AmalgamateCommand& a) {
  const LaunchEnvironment env = read_launch_environment();
  if (!env.present() || cmd.count("--nproc") > 0) return;
  if (cmd.count("--world-size") == 0) a.dist.world_size = env.world_size;
  if (cmd.count("--rank") == 0) a.dist.rank = env.rank;
  if (cmd.count("--dist-url") == 0) {
    a.dist.url = env.url;
    a.dist.launcher_store = env.agent_store;
  }
  if (env.local_rank >= 0 && a.config.train.device == "cuda")
    a.config.train.device = "cuda:" + std::to_string(env.local_rank);
}

void add_max_loss_growth_option(CLI::App* cmd, TrainOptions& t) {
  cmd->add_option("--max-loss-growth", t.max_loss_growth,
                  "Divergence guard: stop when the loss exceeds this many times max(1, its first "
                  "step's) (0 = off)")
      ->capture_default_str();
}

// ---- One registration function per command: its options, then its runner. ----

Runner add_teach(CLI::App* cmd, CliState&) {
  struct Cli {
    CliData data;
    TeachCommand command;
  };
  auto c = std::make_shared<Cli>();
  add_data_options(cmd, c->data);
  cmd->add_option("--task", c->command.task,
                  "NAME=CLASSES, e.g. A=0-4 or shoes=5,7,9 (IDX data); with a labeled "
                  "folder: NAME (all classes) or NAME=INDICES of its sorted class folders");
  cmd->add_option("--arch", c->command.model.arch, "resnet|vgg|mobilenetv2")->capture_default_str();
  add_model_options(cmd, c->command.model, "");
  cmd->add_option("--resume", c->command.resume,
                  "Continue the teach run in RUN_DIR from its last checkpoint (other options "
                  "come from RUN_DIR/config.json; --threads, --epochs, --lr, --max-loss-growth "
                  "may be given)");
  cmd->add_option("--checkpoint-every", c->command.checkpoint_every,
                  "Steps between run checkpoints (0 = only at epoch ends)")
      ->capture_default_str();
  cmd->add_flag("--overwrite", c->command.overwrite,
                "Let a new run replace the run already in --out (otherwise refused)");
  add_max_loss_growth_option(cmd, c->command.train);
  add_train_options(cmd, c->command.train, c->command.out);
  return [c, cmd] {
    if (!c->command.resume.empty()) {
      refuse_options_on_resume(*cmd);
      return resume_teach(c->command.resume, resume_overrides(*cmd, c->command.train));
    }
    c->command.data = resolved(c->data);
    return run_teach(c->command);
  };
}

Runner add_amalgamate(CLI::App* cmd, CliState& state) {
  struct Cli {
    CliData data;
    AmalgamateCommand command;
    ObjectiveOptions objective;
    bool no_teacher_cache = false;
  };
  auto c = std::make_shared<Cli>();
  AmalgamateCommand& a = c->command;
  add_data_options(cmd, c->data);
  cmd->add_option("--teacher", a.teachers,
                  "Teacher: PATH from amalgam teach, or PATH.pt:LAYER, a TorchScript file and "
                  "the submodule whose output is its feature map (repeat for each)");
  cmd->add_flag("--dry-run", a.dry_run,
                "Print the resolved options and a model summary, then exit without training");
  cmd->add_option(
      "--resume", a.resume,
      "Continue the run in RUN_DIR from its last checkpoint (other options come "
      "from RUN_DIR/config.json; --threads, --epochs, --lr, --max-loss-growth may be given)");
  cmd->add_option("--log-every", a.config.log_every,
                  "Steps between progress lines and metrics records")
      ->capture_default_str();
  cmd->add_option("--checkpoint-every", a.config.checkpoint_every,
                  "Steps between run checkpoints (0 = only at epoch ends)")
      ->capture_default_str();
  cmd->add_option("--student", a.config.student.arch,
                  "Student: resnet|vgg|mobilenetv2, or PATH.pt:LAYER (a TorchScript file)")
      ->capture_default_str();
  cmd->add_option("--val-data", a.val_dir,
                  "Labeled folder (root/<class>/ images, classes named as the teachers' ones) for "
                  "validation accuracy each epoch and the routing check");
  cmd->add_option("--export", a.export_path,
                  "Also write the student as TorchScript (forward -> logits) with a sidecar");
  cmd->add_flag("--overwrite", a.overwrite,
                "Let a new run replace the run already in --out (otherwise refused)");
  add_model_options(cmd, a.config.student, "student-");
  add_objective_options(cmd, c->objective);
  cmd->add_option("--block-lr-mult", a.config.train.block_lr_mult,
                  "Learning rate of the objective's parts (common feature block) = lr x this")
      ->capture_default_str();
  a.config.train.min_steps = kDefaultMinSteps;
  cmd->add_option("--min-steps", a.config.train.min_steps,
                  "The default schedule takes at least this many optimisation steps: a small "
                  "transfer set gets more epochs (an --epochs given alone is taken as it is; "
                  "0 = --epochs alone)")
      ->capture_default_str();
  cmd->add_option("--steps", a.config.train.steps,
                  "Train exactly this many optimisation steps, the schedule spanning them and the "
                  "last epoch cut short (overrides --epochs and --min-steps; 0 = the epochs "
                  "decide)")
      ->capture_default_str();
  AugmentOptions& augment = a.config.train.augment;
  cmd->add_flag("--random-resized-crop", augment.random_resized_crop,
                "Augment: torchvision's RandomResizedCrop, drawn per image on the image as stored "
                "(a streamed file at its full size), then resized to the input; the teachers see "
                "the same crop");
  cmd->add_option("--crop-scale", augment.crop_scale,
                  "RandomResizedCrop: MIN,MAX share of the image's area")
      ->delimiter(',')
      ->expected(2)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->default_str("0.08,1");
  cmd->add_option("--crop-ratio", augment.crop_ratio,
                  "RandomResizedCrop: MIN,MAX width/height of the box (log-uniform)")
      ->delimiter(',')
      ->expected(2)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast)
      ->default_str("0.75,1.3333");
  cmd->add_option("--mixup", a.config.train.augment.mixup_alpha,
                  "Augment: mix each transfer image with another of its batch, lambda ~ "
                  "Beta(ALPHA, ALPHA); the teachers answer the mixed image (0 = off)")
      ->capture_default_str();
  cmd->add_flag("--channels-last", a.config.channels_last,
                "Train in channels-last (NHWC) memory layout");
  cmd->add_flag("--teachers-see-clean-images", a.config.teachers_see_clean_images,
                "With --crop-padding/--flip: teachers see the un-augmented image (their outputs "
                "stay cached), the student the augmented one");
  add_max_loss_growth_option(cmd, a.config.train);
  cmd->add_flag("--no-teacher-cache", c->no_teacher_cache,
                "Run the teachers on every batch instead of caching their outputs once");
  add_train_options(cmd, a.config.train, a.out);
  add_distributed_options(cmd, a);
  return [c, cmd, &state] {
    AmalgamateCommand& a = c->command;
    a.data = resolved(c->data);
    if (!a.resume.empty()) refuse_options_on_resume(*cmd);
    a.config.objective = objective_config(c->objective);
    // An --epochs the user gives is the schedule they asked for, unless --min-steps is given too.
    if (cmd->count("--epochs") > 0 && cmd->count("--min-steps") == 0) a.config.train.min_steps = 0;
    require_data_for_user_models(cmd, a.teachers);
    a.config.cache_teachers = !c->no_teacher_cache;
    AMALGAM_CHECK(a.nproc >= 0, "--nproc: must be >= 0");
    apply_launch_environment(*cmd, a);
    AMALGAM_CHECK(!a.resume.empty() || !a.teachers.empty(),
                  "--teacher: at least one teacher is needed");
    if (a.nproc > 0 && !a.dry_run) return launch_amalgamate(a, state.args);
    if (a.dist.enabled()) {
      // A data-parallel rank other than 0 only speaks when something fails; errors name it.
      state.who = "rank " + std::to_string(a.dist.rank) + ": ";
      if (a.dist.rank > 0 && !state.verbose) set_log_level(LogLevel::kQuiet);
    }
    if (!a.resume.empty())
      return resume_amalgamate(a.resume, resume_overrides(*cmd, a.config.train), a.dist);
    return run_amalgamate(a);
  };
}

Runner add_eval(CLI::App* cmd, CliState&) {
  struct Cli {
    CliData data;
    EvalCommand command;
  };
  auto c = std::make_shared<Cli>();
  add_data_options(cmd, c->data);
  cmd->add_option("--teacher", c->command.teachers,
                  "Teacher: PATH or PATH.pt:LAYER (repeat for each)");
  cmd->add_option("--student", c->command.student, "Student file (amalgamate's or an --export)");
  cmd->add_option("--split", c->command.split, "test or val")->capture_default_str();
  add_runtime_options(cmd, c->command.runtime.device, c->command.runtime.threads);
  cmd->add_option("--precision", c->command.precision,
                  "fp32, bf16 (autocast forward passes, float32 scores) or auto")
      ->capture_default_str();
  add_json_option(cmd, c->command.json_path, "Also write the scores as JSON");
  return [c, cmd] {
    c->command.data = resolved(c->data);
    require_data_for_user_models(cmd, c->command.teachers);
    return run_eval(c->command);
  };
}

Runner add_inspect(CLI::App* cmd, CliState&) {
  struct Cli {
    CliData data;
    InspectCommand command;
  };
  auto c = std::make_shared<Cli>();
  c->data.data.input.channels = 3;
  c->data.input_size = "224";
  cmd->add_option("model", c->command.model, "TorchScript file")->required();
  cmd->add_option("--input-size", c->data.input_size, "Input HxW (or N)")->capture_default_str();
  cmd->add_option("--channels", c->data.data.input.channels, "Input channels")
      ->capture_default_str();
  return [c] {
    c->command.data = resolved(c->data);
    return run_inspect(c->command);
  };
}

Runner add_predict(CLI::App* cmd, CliState&) {
  struct Cli {
    CliData data;
    PredictCommand command;
  };
  auto c = std::make_shared<Cli>();
  cmd->add_option("--model", c->command.model, "Student file (amalgamate's or an --export)")
      ->required();
  cmd->add_option("--data", c->data.data.source.dirs, "Image file(s) or folder(s) (repeat)")
      ->required();
  cmd->add_option("--on-bad-image", c->data.on_bad_image, "skip or fail")->capture_default_str();
  add_json_option(cmd, c->command.json_path, "Write the JSON here (default: stdout)");
  add_runtime_options(cmd, c->command.runtime.device, c->command.runtime.threads);
  return [c] {
    c->command.data = resolved(c->data);
    return run_predict(c->command);
  };
}

Runner add_export(CLI::App* cmd, CliState&) {
  auto c = std::make_shared<ExportCommand>();
  cmd->add_option("model", c->model, "RUN_DIR of amalgamate, or its student.pt")->required();
  cmd->add_option("--out", c->out, "The TorchScript file to write (.pt; a sidecar goes beside it)")
      ->required();
  cmd->add_option("--threads", c->threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  return [c] { return run_export(*c); };
}

Runner add_shard(CLI::App* cmd, CliState&) {
  struct Cli {
    ShardCommand command;
    std::string on_bad_image = "fail";
  };
  auto c = std::make_shared<Cli>();
  cmd->add_option("--data", c->command.sources,
                  "Image folder(s), tar shard(s) ('DIR/shard-{0000..0099}.tar') or image files, "
                  "in order (repeat)")
      ->required();
  cmd->add_option("--out", c->command.out, "The folder the shards are written to")->required();
  cmd->add_option("--images-per-shard", c->command.writer.images_per_shard,
                  "Images in each shard (the last may hold fewer)")
      ->capture_default_str();
  cmd->add_option("--prefix", c->command.writer.prefix, "Shards are named PREFIX-000000.tar, ...")
      ->capture_default_str();
  cmd->add_option("--on-bad-image", c->on_bad_image,
                  "A truncated source shard: skip (keep what precedes the damage) or fail")
      ->capture_default_str();
  return [c] {
    c->command.sources = expanded_sources(c->command.sources);
    c->command.on_bad_image = parse_bad_image_policy(c->on_bad_image);
    return run_shard(c->command);
  };
}

Runner add_report(CLI::App* cmd, CliState&) {
  auto dir = std::make_shared<std::string>();
  cmd->add_option("run_dir", *dir, "Run directory of amalgamate")->required();
  return [dir] { return run_report(*dir); };
}

Runner add_bench(CLI::App* cmd, CliState&) {
  struct Cli {
    BenchOptions options;
    std::string json_path;
  };
  auto c = std::make_shared<Cli>();
  BenchOptions& b = c->options;
  cmd->add_option("--data", b.data_dir, "Fashion-MNIST IDX folder")->capture_default_str();
  cmd->add_option("--images", b.images, "Transfer images")->capture_default_str();
  cmd->add_option("--epochs", b.epochs, "Epochs timed")->capture_default_str();
  cmd->add_option("--batch-size", b.batch_size, "Images per step")->capture_default_str();
  cmd->add_option("--check-steps", b.check_steps, "First steps whose losses are kept")
      ->capture_default_str();
  cmd->add_option("--threads", b.threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--state", b.state_path,
                  "Write initial weights, data and first-step losses for bench/reference.py");
  cmd->add_option("--precision", b.precision,
                  "fp32, bf16 or auto: the precision timed beside FP32 (auto: bf16 where the CPU "
                  "computes it natively)")
      ->capture_default_str();
  cmd->add_flag("--scaling", b.scaling, "Also time epochs by data size and teacher count");
  cmd->add_flag("--levers", b.levers, "Also time a run without the teacher cache");
  add_json_option(cmd, c->json_path, "Write the measurements here (default: stdout)");
  return [c] {
    const std::string text = run_bench(c->options).dump(2) + "\n";
    if (c->json_path.empty())
      std::printf("%s", text.c_str());
    else
      write_text_atomically(c->json_path, text);
    return 0;
  };
}

Runner add_demo(CLI::App* cmd, CliState&) {
  auto o = std::make_shared<DemoOptions>();
  cmd->add_flag("--quick", o->quick, "Reduced data and epochs (about a minute)");
  add_json_option(cmd, o->json_path, "Also write the results as JSON");
  cmd->add_option("--out", o->out_dir, "Where teachers and students are kept")
      ->capture_default_str();
  cmd->add_option("--data", o->data_dir, "Fashion-MNIST IDX folder")->capture_default_str();
  cmd->add_flag("--retrain", o->retrain_teachers, "Retrain teachers even if cached");
  add_runtime_options(cmd, o->device, o->threads);
  cmd->add_option("--seed", o->seed, "Seed of every training run")->capture_default_str();
  cmd->add_option("--precision", o->precision, "fp32, bf16 or auto for every training run")
      ->capture_default_str();
  return [o] {
    std::printf("%s", format_demo(run_demo(*o)).c_str());
    return 0;
  };
}

Runner add_reproduce(CLI::App* cmd, CliState&) {
  auto o = std::make_shared<ReproduceOptions>();
  cmd->add_option("--seeds", o->seeds, "Student seeds per row")->capture_default_str();
  cmd->add_option("--split", o->split, "Score on test (reports) or val (choosing settings)")
      ->capture_default_str();
  cmd->add_flag("--quick", o->quick, "Small data, small models, 2 epochs (a few minutes)");
  add_json_option(cmd, o->json_path, "Also write the results as JSON");
  cmd->add_option("--markdown", o->markdown_path, "Also write the tables as markdown");
  cmd->add_option("--out", o->out_dir, "Where teachers are kept")->capture_default_str();
  cmd->add_option("--data", o->data_dir, "Fashion-MNIST IDX folder")->capture_default_str();
  cmd->add_option("--digits", o->digits_path, "The cross-domain set-up's digits table")
      ->capture_default_str();
  cmd->add_option("--benchmark", o->benchmarks,
                  "fmnist-2, fmnist-3, cross-domain and/or small-rgb (default: all four)");
  cmd->add_option("--limit", o->train_limit,
                  "Training (= transfer) images kept (default: the preset's; 0 = all)");
  cmd->add_option("--epochs", o->student_epochs, "Epochs of every student (default: preset)");
  cmd->add_option("--rows", o->rows,
                  "Rows to run (default: all): supervised routed-kd routed-cfl kd cfl fitnet "
                  "cfl-no-mmd cfl-no-recon cfl-fixed-space routed-kd-teachers routed-kd-uniform "
                  "single single-per-task")
      ->delimiter(',');
  cmd->add_option("--crop-padding", o->student_augment.crop_padding,
                  "Students: random crop after zero padding by this many pixels (teachers and "
                  "the supervised row keep the preset's recipe)")
      ->capture_default_str();
  cmd->add_flag("--flip", o->student_augment.horizontal_flip, "Students: random horizontal flips");
  cmd->add_option("--mixup", o->student_augment.mixup_alpha,
                  "Students: mixup of the transfer images, lambda ~ Beta(ALPHA, ALPHA) (0 = off)")
      ->capture_default_str();
  cmd->add_flag(
      "--no-probes", [o](int64_t) { o->probes = false; },
      "Skip the linear probes of the cfl row's common space (the paper's objective)");
  add_runtime_options(cmd, o->device, o->threads);
  return [o] {
    std::printf("%s", format_reproduce(run_reproduce(*o)).c_str());
    return 0;
  };
}

// The commands, in --help order.
struct CommandEntry {
  const char* name;
  const char* help;
  Runner (*add)(CLI::App* cmd, CliState& state);
};

const std::vector<CommandEntry>& command_table() {
  static const std::vector<CommandEntry> table = {
      {"teach", "Train one teacher on one task's labeled images", &add_teach},
      {"amalgamate", "Train one student from several teachers", &add_amalgamate},
      {"eval", "Accuracy of teachers and a student per task", &add_eval},
      {"inspect",
       "Module tree of a TorchScript file with each layer's output shape (to pick LAYER)",
       &add_inspect},
      {"predict",
       "Per-task predictions with probabilities, the task gate and the union answer for images",
       &add_predict},
      {"export", "Write a run's student as TorchScript (forward -> logits) for Python",
       &add_export},
      {"report", "Write RUN_DIR/report.html (charts, tables, feature maps)", &add_report},
      {"shard", "Write images into tar shards (WebDataset's layout) that --data streams",
       &add_shard},
      {"bench", "Time CFL amalgamation on the demo's setup and the machine's peak", &add_bench},
      {"demo", "Fashion-MNIST: two teachers, the default method's student vs KD's", &add_demo},
      {"reproduce", "Baselines, ablations and controls of CFL over seeds, as markdown and JSON",
       &add_reproduce},
  };
  return table;
}

// Runs `work`, turning every failure into one line on stderr and an exit code.
int guarded(const CliState& state, const std::function<int()>& work) {
  try {
    return work();
  } catch (const Interrupted& e) {
    std::fprintf(stderr, "amalgam: %s%s\n", state.who.c_str(), e.what());
    return 128 + e.signal();
  } catch (const Error& e) {
    std::fprintf(stderr, "amalgam: error: %s%s\n", state.who.c_str(), e.what());
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "amalgam: error: %s%s\n", state.who.c_str(),
                 first_line(e.what_without_backtrace()).c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amalgam: error: %s%s\n", state.who.c_str(), first_line(e.what()).c_str());
  }
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  configure_allocator();
  CLI::App app{
      "amalgam: one compact student from several expert teachers and unlabeled images "
      "(Common Feature Learning)"};
  app.require_subcommand(1);
  CliState state;
  bool quiet = false;
  app.add_flag("-q,--quiet", quiet, "Print results only");
  app.add_flag("-v,--verbose", state.verbose, "Print more progress");
  app.set_version_flag(
      "--version", std::string("amalgam ") + AMALGAM_VERSION + " (" + build_description() + ")");
  std::vector<std::pair<CLI::App*, Runner>> commands;
  for (const auto& entry : command_table()) {
    CLI::App* cmd = app.add_subcommand(entry.name, entry.help);
    cmd->fallthrough();  // --quiet and --verbose may follow the command
    add_config_option(cmd);
    commands.emplace_back(cmd, entry.add(cmd, state));
  }
  try {
    const int code = guarded(state, [&] {
      state.args = arguments_with_config(app, argc, argv);
      return 0;
    });
    if (code != 0) return code;
    std::vector<std::string> reversed(state.args.rbegin(), state.args.rend());
    app.parse(reversed);             // CLI11 takes them last-first
  } catch (const CLI::Success& e) {  // --help, --help-all, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "amalgam: error: %s\n", explain_usage_error(app, state.args, e).c_str());
    return 2;
  }
  set_log_level(quiet ? LogLevel::kQuiet : state.verbose ? LogLevel::kVerbose : LogLevel::kInfo);
  for (const auto& [cmd, run] : commands)
    if (*cmd) return guarded(state, run);
  return 0;
}

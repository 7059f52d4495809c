#include "app/commands.h"

#include "app/run_config.h"
#include "app/run_errors.h"
#include "app/run_outputs.h"
#include "app/run_recorder.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <new>
#include <optional>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/names.h"
#include "core/precision.h"
#include "core/run_lock.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "distributed/launcher.h"
#include "models/aoti_network.h"
#include "models/checkpoint.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"
#include "routing/routing_check.h"
#include "teachers/conventions.h"
#include "teachers/teacher.h"
#include "training/options_json.h"
#include "training/run_plan.h"
#include "training/student_io.h"
#include "training/teach.h"

namespace amalgam {

namespace {

// The student a run trains: a zoo architecture (nullptr: amalgamate builds it), or a user's
// TorchScript file given as PATH.pt:LAYER.
Network user_student(const std::string& text, const DataOptions& d, const std::string& device) {
  for (const auto& arch : zoo_architectures())
    if (text == arch) return nullptr;
  const ModelRef ref = parse_model_ref(text, "--student");
  AMALGAM_CHECK(std::filesystem::is_regular_file(ref.path),
                "--student: unknown architecture '" + text +
                    "' (expected resnet, vgg, mobilenetv2, or a TorchScript file PATH.pt:LAYER)");
  AMALGAM_CHECK(!is_aoti_package(ref.path),
                "--student: " + ref.path +
                    " is an AOTInductor package: compiled and frozen, it can be a teacher but not "
                    "a student; give the student as TorchScript (PATH.pt:LAYER) or a zoo "
                    "architecture");
  AMALGAM_CHECK(
      !ref.layer.empty(),
      "--student: " + ref.path + " needs :LAYER, the submodule whose output is its feature map");
  const FileConventions conventions = resolve_conventions(ref, d.input);
  return load_torchscript_network(ref.path, layer_with_layout(ref.layer, conventions),
                                  conventions.input, parse_device(device));
}

// Where each network's features come from: its resolved input conventions, the tapped layer, the
// layout it was read in and the feature map that results ({C,H,W}; H = W = 1 for vectors).
// Recorded in config.json.
nlohmann::json network_record(const std::string& ref, NetworkImpl& network) {
  nlohmann::json record = {
      {"ref", ref}, {"input", network.input()}, {"feature_shape", feature_shape(network)}};
  if (auto* scripted = dynamic_cast<TorchScriptNetworkImpl*>(&network)) {
    record["layer"] = scripted->layer();
    record["layout"] = feature_layout_name(scripted->layout());
  } else if (auto* package = dynamic_cast<AotiNetworkImpl*>(&network)) {
    record["format"] = "aoti";
    record["package_device"] = package->package_device();
    record["layout"] = feature_layout_name(package->layout());
  } else {
    record["layout"] = feature_layout_name(FeatureLayout::kNCHW);  // every zoo network
  }
  return record;
}

nlohmann::json networks_record(const AmalgamateCommand& c, const Network& user_student,
                               const std::vector<Teacher>& teachers) {
  nlohmann::json record = {{"teachers", nlohmann::json::array()}};
  for (size_t i = 0; i < teachers.size(); ++i)
    record["teachers"].push_back(network_record(c.teachers[i], *teachers[i].network));
  Network student = user_student;
  if (!student) {
    ModelSpec spec = c.config.student;
    spec.input = transfer_input(teachers);
    spec.num_classes = 1;  // the head does not change the feature map
    student = make_network(spec);
  }
  record["student"] = network_record(c.config.student.arch, *student);
  return record;
}

// How many steps the run will take, in words: a dry run reads no image, and the epochs of a
// --min-steps or --steps run follow from the transfer set's size.
std::string schedule_in_words(const TrainOptions& train) {
  const std::string batch = " of " + std::to_string(train.batch_size) + " images";
  if (train.steps > 0)
    return "exactly " + std::to_string(train.steps) + " steps" + batch +
           " (--steps); the epochs follow from the transfer set's size";
  if (train.min_steps > 0)
    return std::to_string(train.epochs) + " epochs, or more where they take fewer than " +
           std::to_string(train.min_steps) + " steps" + batch +
           " (--min-steps; settled once the transfer set is read, and recorded in config.json)";
  return std::to_string(train.epochs) + " epochs";
}

// --dry-run: the resolved config and what the run would build (its own plan), without touching
// data or disk.
void print_dry_run(const AmalgamateCommand& c, const Network& user_student,
                   const std::vector<Teacher>& teachers, int world_size) {
  const RunPlan plan =
      plan_amalgamation(teachers, c.config, user_student, parse_device(c.config.train.device));
  nlohmann::json summary = {{"out", c.out},
                            {"teachers", nlohmann::json::array()},
                            {"student",
                             {{"arch", c.config.student.arch},
                              {"parameters", count_parameters(*plan.student)},
                              {"feature_shape", plan.objective.student_shape}}},
                            {"head", nlohmann::json::array()},
                            {"schedule", schedule_in_words(c.config.train)}};
  for (size_t i = 0; i < teachers.size(); ++i) {
    summary["teachers"].push_back({{"ref", c.teachers[i]},
                                   {"task", teachers[i].task.name},
                                   {"classes", teachers[i].task.size()},
                                   {"parameters", count_parameters(*teachers[i].network)},
                                   {"feature_shape", teachers[i].feature_shape}});
    summary["head"].push_back({{"task", plan.head.tasks[i].name},
                               {"begin", plan.head.offset(i)},
                               {"end", plan.head.offset(i) + plan.head.tasks[i].size()}});
  }
  const nlohmann::json parts = make_objective(plan.objective)->summary();
  if (parts.is_object()) summary.update(parts);
  std::printf(
      "%s\n",
      nlohmann::json{{"config", run_config(c, world_size)}, {"summary", summary}}.dump(2).c_str());
}

}  // namespace

namespace {

// Every output path of a new run, checked before any input is loaded: outputs never replace an
// input (a teacher, the student, their sidecars) or an older run unless --overwrite says so.
void check_new_run_outputs(const AmalgamateCommand& c) {
  namespace fs = std::filesystem;
  AMALGAM_CHECK(!holds_a_run(c.out) || c.overwrite,
                "--out: " + c.out + " already holds a run; continue it with --resume " + c.out +
                    ", or replace it with --overwrite, or choose another --out");
  if (c.export_path.empty()) return;
  AMALGAM_CHECK(
      fs::weakly_canonical(c.export_path) != fs::weakly_canonical(c.out + "/student.pt"),
      "--export: " + c.export_path + " is where the run saves its student; choose another path");
  std::vector<std::string> inputs;
  for (const std::string& ref : c.teachers) inputs.push_back(parse_model_ref(ref).path);
  inputs.push_back(parse_model_ref(c.config.student.arch).path);
  check_export_target("--export", c.export_path, inputs);
}

// The --val-data folder, its class folders matched to the teachers' class names.
LabeledImages load_validation_folder(const AmalgamateCommand& c,
                                     const std::vector<Teacher>& teachers) {
  DataSource source = c.data.source;
  source.dirs = {c.val_dir};
  source.limit = 0;
  AMALGAM_CHECK(std::filesystem::is_directory(c.val_dir),
                "--val-data: " + c.val_dir + " is not a folder");
  AMALGAM_CHECK(!source.is_idx(), "--val-data: " + c.val_dir +
                                      " holds IDX files; give a labeled image folder "
                                      "(root/<class>/ images); an IDX --data has its own "
                                      "validation split");
  std::vector<TaskSpec> tasks;
  for (const auto& t : teachers) tasks.push_back(t.task);
  LabeledImages val = load_scoring_set(source, "val", transfer_input(teachers), tasks);
  AMALGAM_CHECK(val.size() > 0,
                "--val-data: " + c.val_dir + ": no class folder is named after a teacher's class");
  log_info("amalgamate: validation set: " + std::to_string(val.size()) + " labeled images from " +
           c.val_dir);
  return val;
}

// The routing check recorded by the run in `dir` (resumed runs keep it).
nlohmann::json recorded_routing_check(const std::string& dir) {
  const std::string path = dir + "/config.json";
  return read_run_config(read_whole_file(path), path).routing_check;
}

// A new run's epochs: those that hold train.steps, or raised to take train.min_steps steps on a
// small transfer set; config.json records the result.
void settle_epochs(TrainOptions& train, int64_t transfer_images) {
  const int64_t epochs = epochs_for(train, transfer_images);
  if (epochs == train.epochs) return;
  const std::string why = train.steps > 0
                              ? "--steps " + std::to_string(train.steps) + " takes "
                              : "--min-steps " + std::to_string(train.min_steps) + " sets ";
  log_info("amalgamate: " + std::to_string(transfer_images) + " transfer images take " +
           std::to_string(std::max<int64_t>(1, transfer_images / train.batch_size)) +
           " steps an epoch; " + why + std::to_string(epochs) + " epochs (instead of --epochs " +
           std::to_string(train.epochs) + ")");
  train.epochs = epochs;
}

// run_amalgamate once the process group (if any) has formed; rank 0 holds the run directory's
// lock from before its first file is written to the end of the run.
int amalgamate_in_group(AmalgamateCommand c, std::shared_ptr<ProcessGroup> group) {
  // First: a background process starts with SIGINT ignored, and loading can take seconds; a stop
  // asked for meanwhile is kept and honoured after the first step (checkpoint, exit 130/143).
  install_stop_handlers();
  AmalgamateConfig& config = c.config;
  configure_threads(config.train.threads);
  validate(config);
  if (c.out.empty()) c.out = default_run_dir("amalgamate");
  const bool writer = !group || group->rank() == 0;
  // The lock is taken at once where the directory exists (a second run on it is refused before
  // it loads anything), otherwise when this run creates it; either way before the existing-run
  // check, which a run that got there first would otherwise pass with this one.
  std::optional<RunLock> lock;
  if (writer && !c.dry_run && std::filesystem::is_directory(c.out))
    lock.emplace(c.out, c.resume.empty() ? "--out" : "--resume");
  if (writer && c.resume.empty() && !c.dry_run) check_new_run_outputs(c);
  RunContext context;
  context.group = std::move(group);
  context.student_network = user_student(config.student.arch, c.data, config.train.device);
  AMALGAM_CHECK(!config.sync_batchnorm || !context.student_network,
                "--sync-batchnorm: " + config.student.arch +
                    " is a TorchScript student, whose BatchNorm layers amalgam cannot synchronise "
                    "(a zoo student can)");
  if (!context.student_network)
    make_network(config.student);  // validates the student architecture before any work
  const std::vector<Teacher> teachers =
      load_teachers(c.teachers, parse_device(config.train.device), c.data.input);
  const int world_size = context.group ? context.group->size() : c.dist.world_size;
  if (c.dry_run) {
    print_dry_run(c, context.student_network, teachers, world_size);
    return 0;
  }
  LabeledImages val;
  // A resumed run reads its streamed set's file list instead of scanning the folders again.
  const TransferSet transfer =
      load_transfer_set(c.data.source, transfer_input(teachers), &val,
                        c.resume.empty() ? "" : c.out + "/" + kTransferIndexFile);
  if (!c.val_dir.empty()) val = load_validation_folder(c, teachers);
  if (c.resume.empty()) settle_epochs(config.train, transfer.size());
  // A new run settles its routing rule here and records it; a resumed one keeps its record.
  RoutingCheck routing_check;
  if (c.resume.empty())
    routing_check = settle_routing(teachers, val, config.objective.routing, "amalgamate");
  check_ranks_agree(teachers, transfer, config, context.group.get());
  context.resume = !c.resume.empty();
  if (!writer) {
    // Another rank of a data-parallel run: it trains its shards; rank 0 writes everything.
    amalgamate(teachers, transfer, config, context);
    return 0;
  }
  ensure_directory(c.out);
  if (!lock) {
    lock.emplace(c.out, "--out");
    if (c.resume.empty()) check_new_run_outputs(c);  // a run that started meanwhile and ended
  }
  if (c.resume.empty()) remove_old_run(c.out);  // refused above unless --overwrite
  // Written once every input has been accepted.
  nlohmann::json run = run_config(c, world_size);
  run["networks"] = networks_record(c, context.student_network, teachers);
  run["routing_check"] =
      c.resume.empty() ? nlohmann::json(routing_check) : recorded_routing_check(c.out);
  write_text_atomically(c.out + "/config.json", run.dump(2) + "\n");
  if (c.resume.empty()) write_transfer_index(transfer, c.out + "/" + kTransferIndexFile);
  context.checkpoint_path = c.out + "/checkpoint.pt";
  with_resume_hints("amalgamate", c.out, config.train.batch_size, [&] {
    RunRecorder recorder(c.out, teachers, val, transfer, config, context.resume);
    recorder.attach(context);
    AmalgamationResult result = amalgamate(teachers, transfer, config, context);
    const std::string path = c.out + "/student.pt";
    const nlohmann::json provenance = {{"method", method_of(config.objective).name},
                                       {"teachers", c.teachers}};
    save_student(result, path, provenance);
    std::printf("student (%s, %s, %lld params, %lld outputs) -> %s\n",
                method_of(config.objective).name, result.student_spec.arch.c_str(),
                static_cast<long long>(count_parameters(*result.student)),
                static_cast<long long>(result.head.total()), path.c_str());
    if (!c.export_path.empty()) {
      const double diff = export_student(*result.student, result.head, c.export_path, provenance);
      std::printf("exported TorchScript student -> %s (reloaded: max |logit difference| %.2g)\n",
                  c.export_path.c_str(), diff);
    }
    std::printf("report -> %s\n", recorder.finish(result).c_str());
  });
  return 0;
}

}  // namespace

int run_amalgamate(AmalgamateCommand c) {
  validate(c.dist);
  if (c.dist.enabled()) {  // a CUDA run's ranks meet over NCCL on their GPUs
    const c10::Device device = parse_device(c.config.train.device);
    if (device.is_cuda()) c.dist.nccl_device = device.has_index() ? device.index() : 0;
  }
  std::shared_ptr<ProcessGroup> group;
  if (c.dist.enabled() && !c.dry_run) group = std::make_shared<ProcessGroup>(c.dist);
  return amalgamate_in_group(std::move(c), std::move(group));
}

int resume_amalgamate(const std::string& run_dir, const ResumeOverrides& overrides,
                      const DistributedOptions& dist) {
  const std::string config_path = run_dir + "/config.json";
  validate(dist);
  const bool writer = !dist.enabled() || dist.rank == 0;
  if (writer) {
    AMALGAM_CHECK(std::filesystem::is_regular_file(config_path),
                  "--resume: " + config_path + " is missing; is " + run_dir + " a run directory?");
  }
  // Stopped before its first checkpoint (killed while caching teacher outputs, a full disk):
  // nothing was trained, so the run starts again from its first step with its own config.
  const bool from_start =
      writer && !dist.enabled() && !std::filesystem::is_regular_file(run_dir + "/checkpoint.pt");
  if (writer && dist.enabled())
    AMALGAM_CHECK(
        std::filesystem::is_regular_file(run_dir + "/checkpoint.pt"),
        "--resume: " + run_dir + "/checkpoint.pt is missing: the run wrote no checkpoint yet");
  AmalgamateCommand c;
  c.dist = dist;
  c.out = run_dir;
  c.resume = run_dir;
  // Only rank 0 needs the run directory: the others get its config when the group forms.
  std::string config_text = writer ? read_whole_file(config_path) : "";
  std::shared_ptr<ProcessGroup> group;
  if (dist.enabled()) {
    group = std::make_shared<ProcessGroup>(dist);
    config_text = group->broadcast_bytes(config_text);
  }
  RecordedRun recorded = read_run_config(config_text, config_path);
  AMALGAM_CHECK(recorded.world_size == dist.world_size,
                "--resume: " + run_dir + " was trained by " + std::to_string(recorded.world_size) +
                    " rank(s); resume it with as many (" +
                    (recorded.world_size > 1 ? "--nproc " + std::to_string(recorded.world_size)
                                             : "no --nproc") +
                    ")");
  c.data = std::move(recorded.command.data);
  c.config = std::move(recorded.command.config);
  c.teachers = std::move(recorded.command.teachers);
  c.export_path = std::move(recorded.command.export_path);
  c.val_dir = std::move(recorded.command.val_dir);
  apply_resume_overrides(overrides, run_dir, c.config.train);
  if (from_start) {
    log_info("amalgamate: " + run_dir +
             " has no checkpoint yet; starting the run again from its first step");
    c.resume.clear();
    c.overwrite = true;  // its own files
  }
  return amalgamate_in_group(std::move(c), std::move(group));
}

int launch_amalgamate(const AmalgamateCommand& c, const std::vector<std::string>& args) {
  LaunchOptions launch;
  launch.nproc = c.nproc;
  launch.dist = c.dist;
  // The ranks parse the same command line (and --config); each gets its own rank options, and
  // --nproc 0 so that none launches again.
  const int world = c.dist.world_size > 1 ? c.dist.world_size : c.nproc;
  if (c.resume.empty()) require_even_shards(c.config.train.batch_size, world);
  launch.threads_per_rank = c.config.train.threads;
  std::set<std::string> replaced = {"--nproc",        "--rank",       "--world-size", "--dist-url",
                                    "--dist-timeout", "--dist-iface", "--threads"};
  if (c.config.train.device == "cuda" && torch::cuda::is_available()) {
    launch.cuda_devices = static_cast<int>(torch::cuda::device_count());
    replaced.insert("--device");
  }
  std::vector<std::string> rank_args;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string name = args[i].substr(0, args[i].find('='));
    if (!replaced.count(name))
      rank_args.push_back(args[i]);
    else if (args[i].find('=') == std::string::npos)
      ++i;  // its value
  }
  rank_args.push_back("--nproc");
  rank_args.push_back("0");
  return launch_local_ranks(rank_args, launch);
}

}  // namespace amalgam

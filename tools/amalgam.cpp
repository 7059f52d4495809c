// amalgam: the command-line front end. It owns all option parsing; the work is the library's.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>
#include <sstream>

#include "app/bench.h"
#include "app/commands.h"
#include "app/data_sources.h"
#include "app/demo.h"
#include "app/reproduce.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "distributed/launcher.h"
#include "distributed/process_group.h"
#include "evaluation/evaluate.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"
#include "reporting/report.h"
#include "reporting/table.h"
#include "teachers/teacher.h"
#include "training/amalgamate.h"
#include "training/student_io.h"
#include "training/teach.h"

namespace {

using namespace amalgam;

// The data options as typed; resolved() turns them into the library's DataOptions.
struct CliData {
  DataOptions data;
  std::string on_bad_image = "fail";
  std::string input_size;
};

void add_data_options(CLI::App* cmd, CliData& c) {
  DataOptions& d = c.data;
  cmd->add_option("--data", d.source.dirs,
                  "IDX folder, or image folder(s): a tree of images (amalgamate) or "
                  "root/<class>/ images (teach, eval); repeat to combine")
      ->default_str(d.source.dirs.front());
  cmd->add_option("--val-size", d.source.val_size,
                  "Training images held out for validation (image folders: a tenth)")
      ->capture_default_str();
  cmd->add_option("--split-seed", d.source.split_seed, "Seed of the train/validation split")
      ->capture_default_str();
  cmd->add_option("--limit", d.source.limit, "Use at most this many training images (0 = all)")
      ->capture_default_str();
  cmd->add_option("--on-bad-image", c.on_bad_image,
                  "An unreadable image file: skip (report it) or fail")
      ->capture_default_str();
  cmd->add_option("--input-size", c.input_size,
                  "Input HxW (or N for NxN) of TorchScript models without a sidecar, and of "
                  "decoded images");
  cmd->add_option("--channels", d.input.channels, "Input channels (1 or 3) of the same");
  cmd->add_option("--mean", d.input.mean, "Per-channel mean of the same (one value or one each)")
      ->delimiter(',');
  cmd->add_option("--std", d.input.std, "Per-channel std of the same (one value or one each)")
      ->delimiter(',');
}

// Resolves the textual data options once parsing is done.
DataOptions resolved(const CliData& c) {
  DataOptions d = c.data;
  d.source.on_bad_image = parse_bad_image_policy(c.on_bad_image);
  if (!c.input_size.empty()) parse_input_size(c.input_size, d.input);
  require(d.input.channels == 0 || d.input.channels == 1 || d.input.channels == 3,
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
  cmd->add_option("--schedule", t.schedule, "Learning-rate schedule: cosine|step|constant")
      ->capture_default_str();
  cmd->add_option("--step-epochs", t.step_epochs, "Step schedule: epochs between decays")
      ->capture_default_str();
  cmd->add_option("--gamma", t.gamma, "Step schedule: decay factor")->capture_default_str();
  cmd->add_option("--seed", t.seed, "Seed of initialisation and data order")->capture_default_str();
  cmd->add_option("--threads", t.threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  cmd->add_option("--device", t.device, "cpu or cuda[:N]")->capture_default_str();
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

// --config FILE: a JSON object whose keys are options of the command given ("epochs": 3,
// "teacher": ["a.pt:layer4", "b.pt:features"], "flip": true). An option also given on the
// command line keeps the command line's value. Returns the arguments to parse.
std::vector<std::string> arguments_with_config(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto it = std::find(args.begin(), args.end(), "--config");
  if (it == args.end()) return args;
  require(it + 1 != args.end(), "--config: needs a JSON file");
  const std::string path = *(it + 1);
  args.erase(it, it + 2);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_whole_file(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + std::string(e.what()).substr(0, 200));
  }
  require(config.is_object(), path + ": expected a JSON object of option names and values");
  std::set<std::string> given;
  for (const auto& a : args)
    if (a.rfind("--", 0) == 0) given.insert(a.substr(0, a.find('=')));
  for (const auto& [key, value] : config.items()) {
    std::string name = "--" + key;
    std::replace(name.begin(), name.end(), '_', '-');
    if (given.count(name)) continue;
    const auto text = [&](const nlohmann::json& v) {
      return v.is_string() ? v.get<std::string>() : v.dump();
    };
    if (value.is_boolean()) {
      if (value.get<bool>()) args.push_back(name);
    } else if (value.is_array()) {
      for (const auto& v : value) {
        args.push_back(name);
        args.push_back(text(v));
      }
    } else {
      args.push_back(name);
      args.push_back(text(value));
    }
  }
  return args;
}

// `args` without the options in `names` (as "--name value" or "--name=value").
std::vector<std::string> without_options(const std::vector<std::string>& args,
                                         const std::set<std::string>& names) {
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string name = args[i].substr(0, args[i].find('='));
    if (!names.count(name)) {
      kept.push_back(args[i]);
    } else if (args[i].find('=') == std::string::npos) {
      ++i;  // its value
    }
  }
  return kept;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "amalgam: one compact student from several expert teachers and unlabeled images "
      "(Common Feature Learning)"};
  app.require_subcommand(1);
  std::string config_unused;  // read before parsing (arguments_with_config); declared for --help
  const auto add_config = [&](CLI::App* cmd) {
    cmd->add_option("--config", config_unused,
                    "JSON file of this command's options (the command line wins)");
  };
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "Print results only");
  app.add_flag("-v,--verbose", verbose, "Print more progress");

  // teach
  CliData teach_data;
  ModelSpec teach_spec;
  TrainOptions teach_train;
  std::string teach_task, teach_out;
  auto* teach_cmd = app.add_subcommand("teach", "Train one teacher on one task's labeled images");
  add_data_options(teach_cmd, teach_data);
  teach_cmd->add_option("--task", teach_task,
                        "NAME=CLASSES, e.g. A=0-4 or shoes=5,7,9 (IDX data); with a labeled "
                        "folder: NAME (all classes) or NAME=INDICES of its sorted class folders");
  teach_cmd->add_option("--arch", teach_spec.arch, "resnet|vgg|mobilenetv2")->capture_default_str();
  add_model_options(teach_cmd, teach_spec, "");
  add_train_options(teach_cmd, teach_train, teach_out);

  // amalgamate
  CliData am_data;
  AmalgamateOptions am;
  std::vector<std::string> am_teachers;
  std::string am_sigmas, am_out;
  auto* am_cmd = app.add_subcommand("amalgamate", "Train one student from several teachers");
  add_data_options(am_cmd, am_data);
  am_cmd->add_option("--teacher", am_teachers,
                     "Teacher: PATH from amalgam teach, or PATH.pt:LAYER, a TorchScript file and "
                     "the submodule whose output is its feature map (repeat for each)");
  bool am_dry_run = false;
  am_cmd->add_flag("--dry-run", am_dry_run,
                   "Print the resolved options and a model summary, then exit without training");
  std::string am_resume;
  am_cmd->add_option("--resume", am_resume,
                     "Continue the run in RUN_DIR from its last checkpoint (other options come "
                     "from RUN_DIR/config.json; --threads may be given)");
  am_cmd
      ->add_option("--log-every", am.log_every, "Steps between progress lines and metrics records")
      ->capture_default_str();
  am_cmd
      ->add_option("--checkpoint-every", am.checkpoint_every,
                   "Steps between run checkpoints (0 = only at epoch ends)")
      ->capture_default_str();
  am_cmd
      ->add_option("--student", am.student.arch,
                   "Student: resnet|vgg|mobilenetv2, or PATH.pt:LAYER (a TorchScript file)")
      ->capture_default_str();
  std::string am_export;
  am_cmd->add_option("--export", am_export,
                     "Also write the student as TorchScript (forward -> logits) with a sidecar");
  add_model_options(am_cmd, am.student, "student-");
  am_cmd->add_option("--method", am.objective.method, "cfl, kd or fitnet")->capture_default_str();
  bool no_mmd = false, no_reconstruction = false;
  am_cmd->add_flag("--no-mmd", no_mmd, "cfl ablation: drop the MMD term");
  am_cmd->add_flag("--no-reconstruction", no_reconstruction,
                   "cfl ablation: drop the reconstruction term");
  am_cmd->add_flag("--fixed-common-space", am.fixed_common_space,
                   "cfl control: never train the align layers and extractor");
  am_cmd->add_option("--temperature", am.objective.temperature, "Soft-target temperature T")
      ->capture_default_str();
  am_cmd->add_option("--lambda-kd", am.objective.lambda_kd, "Weight of the soft-target term")
      ->capture_default_str();
  am_cmd->add_option("--lambda-cf", am.objective.lambda_cf, "Weight of the common-feature terms")
      ->capture_default_str();
  am_cmd->add_option("--beta", am.objective.beta, "Weight of reconstruction")
      ->capture_default_str();
  am_cmd->add_option("--mmd-sigmas", am_sigmas, "Comma-separated kernel bandwidths")
      ->default_str("0.001,0.01,0.05,0.1,0.2,1,2");
  am_cmd->add_option("--common-channels", am.common_channels, "h: channels of the common space")
      ->capture_default_str();
  am_cmd->add_option("--extractor-blocks", am.extractor_blocks, "Residual units in the extractor")
      ->capture_default_str();
  am_cmd
      ->add_option("--block-lr-mult", am.train.block_lr_mult,
                   "Common feature block learning rate = lr x this")
      ->capture_default_str();
  am_cmd->add_flag("--channels-last", am.channels_last,
                   "Train in channels-last (NHWC) memory layout");
  bool no_teacher_cache = false;
  am_cmd->add_flag("--no-teacher-cache", no_teacher_cache,
                   "Run the teachers on every batch instead of caching their outputs once");
  add_train_options(am_cmd, am.train, am_out);
  // Data parallelism (c10d/Gloo): --batch-size stays the whole step's batch.
  LaunchOptions launch;
  launch.nproc = 0;
  DistributedOptions& dist = launch.dist;
  am_cmd
      ->add_option("--nproc", launch.nproc,
                   "Start this many ranks on this host (0 = run in this process)")
      ->capture_default_str();
  am_cmd->add_option("--world-size", dist.world_size, "Ranks in the run, over all hosts")
      ->capture_default_str();
  am_cmd->add_option("--rank", dist.rank, "This process's rank (with --nproc: the first one here)")
      ->capture_default_str();
  am_cmd->add_option("--dist-url", dist.url,
                     "tcp://HOST:PORT where rank 0 meets the others (--nproc alone: a free "
                     "loopback port)");
  am_cmd
      ->add_option("--dist-timeout", dist.timeout_s,
                   "Seconds to wait for a rank before failing the run")
      ->capture_default_str();
  am_cmd->add_option(
      "--dist-iface", dist.interface,
      "Network interface for the ranks' traffic (default: the one routing to rank 0)");
  am_cmd->add_flag("--sync-batchnorm", am.sync_batchnorm,
                   "Data-parallel: the student's BatchNorm uses the whole batch's moments");

  // eval
  CliData ev_data;
  std::vector<std::string> ev_teachers;
  std::string ev_student, ev_split = "test", ev_device = "cpu", ev_json;
  int ev_threads = 0;
  auto* ev_cmd = app.add_subcommand("eval", "Accuracy of teachers and a student per task");
  add_data_options(ev_cmd, ev_data);
  ev_cmd->add_option("--teacher", ev_teachers, "Teacher: PATH or PATH.pt:LAYER (repeat for each)");
  ev_cmd->add_option("--student", ev_student, "Student file (amalgamate's or an --export)");
  ev_cmd->add_option("--split", ev_split, "test or val")->capture_default_str();
  ev_cmd->add_option("--device", ev_device, "cpu or cuda[:N]")->capture_default_str();
  ev_cmd->add_option("--threads", ev_threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  ev_cmd->add_option("--json", ev_json, "Also write the scores as JSON");

  // inspect
  std::string in_path;
  CliData in_data;
  in_data.data.input.channels = 3;
  in_data.input_size = "224";
  auto* in_cmd = app.add_subcommand(
      "inspect",
      "Module tree of a TorchScript file with each layer's output shape (to pick LAYER)");
  in_cmd->add_option("model", in_path, "TorchScript file")->required();
  in_cmd->add_option("--input-size", in_data.input_size, "Input HxW (or N)")->capture_default_str();
  in_cmd->add_option("--channels", in_data.data.input.channels, "Input channels")
      ->capture_default_str();

  // predict
  CliData pr_data;
  std::string pr_model, pr_out, pr_device = "cpu";
  int pr_threads = 0;
  auto* pr_cmd = app.add_subcommand("predict", "Logits and per-task predictions for image folders");
  pr_cmd->add_option("--model", pr_model, "Student file (amalgamate's or an --export)")->required();
  pr_cmd->add_option("--data", pr_data.data.source.dirs, "Image folder(s)")->required();
  pr_cmd->add_option("--on-bad-image", pr_data.on_bad_image, "skip or fail")->capture_default_str();
  pr_cmd->add_option("--json", pr_out, "Write the JSON here (default: stdout)");
  pr_cmd->add_option("--device", pr_device, "cpu or cuda[:N]")->capture_default_str();
  pr_cmd->add_option("--threads", pr_threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();

  // report
  std::string report_dir;
  auto* report_cmd =
      app.add_subcommand("report", "Write RUN_DIR/report.html (charts, tables, feature maps)");
  report_cmd->add_option("run_dir", report_dir, "Run directory of amalgamate")->required();

  // bench
  BenchOptions bench;
  std::string bench_json;
  auto* bench_cmd = app.add_subcommand(
      "bench", "Time CFL amalgamation on the demo's setup and the machine's FP32 peak");
  bench_cmd->add_option("--data", bench.data_dir, "Fashion-MNIST IDX folder")
      ->capture_default_str();
  bench_cmd->add_option("--images", bench.images, "Transfer images")->capture_default_str();
  bench_cmd->add_option("--epochs", bench.epochs, "Epochs timed")->capture_default_str();
  bench_cmd->add_option("--batch-size", bench.batch_size, "Images per step")->capture_default_str();
  bench_cmd->add_option("--check-steps", bench.check_steps, "First steps whose losses are kept")
      ->capture_default_str();
  bench_cmd->add_option("--threads", bench.threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  bench_cmd->add_option("--state", bench.state_path,
                        "Write initial weights, data and first-step losses for bench/reference.py");
  bench_cmd->add_flag("--scaling", bench.scaling,
                      "Also time epochs by data size and teacher count");
  bench_cmd->add_flag("--levers", bench.levers, "Also time a run without the teacher cache");
  bench_cmd->add_option("--json", bench_json, "Write the measurements here (default: stdout)");

  // demo
  DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "Fashion-MNIST: two teachers, CFL vs KD students");
  demo_cmd->add_flag("--quick", demo.quick, "Reduced data and epochs (about a minute)");
  demo_cmd->add_option("--json", demo.json_path, "Also write the results as JSON");
  demo_cmd->add_option("--out", demo.out_dir, "Where teachers and students are kept")
      ->capture_default_str();
  demo_cmd->add_option("--data", demo.data_dir, "Fashion-MNIST IDX folder")->capture_default_str();
  demo_cmd->add_flag("--retrain", demo.retrain_teachers, "Retrain teachers even if cached");
  demo_cmd->add_option("--threads", demo.threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  demo_cmd->add_option("--device", demo.device, "cpu or cuda[:N]")->capture_default_str();
  demo_cmd->add_option("--seed", demo.seed, "Seed of every training run")->capture_default_str();

  // reproduce
  ReproduceOptions rep;
  auto* rep_cmd = app.add_subcommand(
      "reproduce", "Baselines, ablations and controls of CFL over seeds, as markdown and JSON");
  rep_cmd->add_option("--seeds", rep.seeds, "Student seeds per row")->capture_default_str();
  rep_cmd->add_flag("--quick", rep.quick, "Small data, small models, 2 epochs (a few minutes)");
  rep_cmd->add_option("--json", rep.json_path, "Also write the results as JSON");
  rep_cmd->add_option("--markdown", rep.markdown_path, "Also write the tables as markdown");
  rep_cmd->add_option("--out", rep.out_dir, "Where teachers are kept")->capture_default_str();
  rep_cmd->add_option("--data", rep.data_dir, "Fashion-MNIST IDX folder")->capture_default_str();
  rep_cmd->add_option("--benchmark", rep.benchmarks, "fmnist-2 and/or fmnist-3 (default: both)");
  rep_cmd->add_option("--limit", rep.train_limit,
                      "Training (= transfer) images kept (default: the preset's; 0 = all)");
  rep_cmd->add_option("--epochs", rep.student_epochs, "Epochs of every student (default: preset)");
  rep_cmd->add_option("--threads", rep.threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  rep_cmd->add_option("--device", rep.device, "cpu or cuda[:N]")->capture_default_str();

  for (CLI::App* cmd : app.get_subcommands({})) add_config(cmd);
  try {
    std::vector<std::string> args;
    try {
      args = arguments_with_config(argc, argv);
    } catch (const Error& e) {
      std::fprintf(stderr, "amalgam: error: %s\n", e.what());
      return 1;
    }
    std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "amalgam: error: %s (see --help)\n", first_line(e.what()).c_str());
    return 2;
  }
  set_log_level(quiet ? LogLevel::kQuiet : verbose ? LogLevel::kVerbose : LogLevel::kInfo);
  // A data-parallel rank other than 0 only speaks when something fails; errors name the rank.
  const bool ranked = *am_cmd && launch.nproc == 0 && dist.enabled();
  if (ranked && dist.rank > 0 && !verbose) set_log_level(LogLevel::kQuiet);
  const std::string who = ranked ? "rank " + std::to_string(dist.rank) + ": " : "";
  try {
    if (*teach_cmd)
      return run_teach(resolved(teach_data), teach_spec, teach_task, teach_train, teach_out);
    am.cache_teachers = !no_teacher_cache;
    am.objective.use_mmd = !no_mmd;
    am.objective.use_reconstruction = !no_reconstruction;
    if (*am_cmd) {
      require(launch.nproc >= 0, "--nproc: must be >= 0");
      require(am_resume.empty() || (am_teachers.empty() && am_out.empty()),
              "--resume: the run's teachers and directory come from its config.json; give "
              "--resume alone (and --threads or the ranks' options if needed)");
      require(!am_resume.empty() || !am_teachers.empty(),
              "--teacher: at least one teacher is needed");
    }
    if (*am_cmd && launch.nproc > 0 && !am_dry_run) {
      // The ranks parse the same command line (and --config); each gets its own rank options,
      // and --nproc 0 so that none launches again.
      const int world = launch.dist.world_size > 1 ? launch.dist.world_size : launch.nproc;
      if (am_resume.empty()) require_even_shards(am.train.batch_size, world);
      launch.threads_per_rank = am.train.threads;
      std::set<std::string> replaced = {"--nproc",    "--rank",         "--world-size",
                                        "--dist-url", "--dist-timeout", "--dist-iface",
                                        "--threads"};
      if (am.train.device == "cuda" && torch::cuda::is_available()) {
        launch.cuda_devices = static_cast<int>(torch::cuda::device_count());
        replaced.insert("--device");
      }
      std::vector<std::string> args =
          without_options(std::vector<std::string>(argv + 1, argv + argc), replaced);
      args.push_back("--nproc");
      args.push_back("0");
      return launch_local_ranks(args, launch);
    }
    if (*am_cmd && !am_resume.empty()) return resume_amalgamate(am_resume, am.train.threads, dist);
    if (*am_cmd)
      return run_amalgamate(resolved(am_data), am, am_teachers, am_sigmas, am_out, am_export,
                            am_dry_run, dist);
    if (*ev_cmd)
      return run_eval(resolved(ev_data), ev_split, ev_teachers, ev_student, ev_device, ev_threads,
                      ev_json);
    if (*in_cmd) {
      const DataOptions d = resolved(in_data);
      InputSpec input;
      input.channels = d.input.channels;
      input.height = d.input.height;
      input.width = d.input.width;
      std::printf("%s", inspect_torchscript(in_path, input).c_str());
      return 0;
    }
    if (*pr_cmd) return run_predict(resolved(pr_data), pr_model, pr_out, pr_device, pr_threads);
    if (*report_cmd) {
      std::printf("report -> %s\n", write_report(report_dir).c_str());
      return 0;
    }
    if (*bench_cmd) {
      const std::string text = run_bench(bench).dump(2) + "\n";
      if (bench_json.empty())
        std::printf("%s", text.c_str());
      else
        write_text_atomically(bench_json, text);
      return 0;
    }
    if (*rep_cmd) {
      const ReproduceResult result = run_reproduce(rep);
      std::printf("%s", format_reproduce(result).c_str());
      return 0;
    }
    if (*demo_cmd) {
      const DemoResult result = run_demo(demo);
      std::printf("%s", format_demo(result).c_str());
      return 0;
    }
  } catch (const Interrupted& e) {
    std::fprintf(stderr, "amalgam: %s%s\n", who.c_str(), e.what());
    return 128 + e.signal();
  } catch (const Error& e) {
    std::fprintf(stderr, "amalgam: error: %s%s\n", who.c_str(), e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "amalgam: error: %s%s\n", who.c_str(),
                 first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amalgam: error: %s%s\n", who.c_str(), first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}

// amalgam: the command-line front end. It owns all option parsing; the work is the library's.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <sstream>

#include "app/demo.h"
#include "app/reproduce.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/dataset.h"
#include "evaluation/evaluate.h"
#include "models/zoo.h"
#include "reporting/table.h"
#include "teachers/teacher.h"
#include "training/amalgamate.h"
#include "training/student_io.h"
#include "training/teach.h"

namespace {

using namespace amalgam;

constexpr const char* kDefaultData = "/usr/share/datasets/fashion-mnist";

// Options of the data every command reads.
struct DataOptions {
  std::string dir = kDefaultData;
  int64_t val_size = 5000;
  uint64_t split_seed = kDefaultSplitSeed;
  int64_t limit = 0;
};

// The training images after the validation split, at most `limit` of them when limit > 0.
TrainValSplit load_training_split(const DataOptions& d) {
  require(d.limit >= 0, "--limit: must be >= 0 (0 = all images)");
  TrainValSplit data = split_train_val(load_idx_split(d.dir, "train"), d.val_size, d.split_seed);
  data.train = subsample(data.train, d.limit, d.split_seed + 1);
  return data;
}

void add_data_options(CLI::App* cmd, DataOptions& d) {
  cmd->add_option("--data", d.dir, "Folder of MNIST-family IDX files")->capture_default_str();
  cmd->add_option("--val-size", d.val_size, "Training images held out for validation")
      ->capture_default_str();
  cmd->add_option("--split-seed", d.split_seed, "Seed of the train/validation split")
      ->capture_default_str();
  cmd->add_option("--limit", d.limit, "Use at most this many training images (0 = all)")
      ->capture_default_str();
}

void add_train_options(CLI::App* cmd, TrainOptions& t, std::string& out) {
  cmd->add_option("--out", out, "Run directory")->required();
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

int run_teach(const DataOptions& d, ModelSpec spec, const std::string& task_text,
              const TrainOptions& t, const std::string& out) {
  configure_threads(t.threads);
  const TaskSpec task = parse_task(task_text);
  const TrainValSplit data = load_training_split(d);
  spec.input.channels = data.train.images.size(1);
  spec.input.height = data.train.images.size(2);
  spec.input.width = data.train.images.size(3);
  make_network(spec);  // validates the architecture before any training
  ensure_directory(out);
  const LabeledImages val = d.val_size > 0 ? select_task(data.val, task) : LabeledImages{};
  const TeachResult result = teach(spec, task, select_task(data.train, task), val, t);
  spec.num_classes = task.size();
  nlohmann::json extra = {{"epochs", t.epochs}, {"seconds", result.seconds}};
  if (!result.val_accuracy.empty()) extra["val_accuracy"] = result.val_accuracy.back();
  const std::string path = out + "/teacher.pt";
  save_teacher(*result.network, spec, task, path, extra);
  std::printf("teacher %s (%s, %lld params) -> %s", task.name.c_str(), spec.arch.c_str(),
              static_cast<long long>(count_parameters(*result.network)), path.c_str());
  if (!result.val_accuracy.empty())
    std::printf("  val acc %s%%", percent(result.val_accuracy.back()).c_str());
  std::printf("\n");
  return 0;
}

std::vector<Teacher> load_teachers(const std::vector<std::string>& paths,
                                   const std::string& device) {
  std::vector<Teacher> teachers;
  for (const auto& p : paths) teachers.push_back(load_teacher(p, parse_device(device)));
  check_teachers_compatible(teachers);
  return teachers;
}

int run_amalgamate(const DataOptions& d, AmalgamateOptions options,
                   const std::vector<std::string>& teacher_paths, const std::string& sigmas,
                   const std::string& out) {
  configure_threads(options.train.threads);
  if (!sigmas.empty()) {
    std::stringstream parts(sigmas);
    std::string part;
    while (std::getline(parts, part, ',')) {
      try {
        options.objective.sigmas.push_back(std::stod(part));
      } catch (const std::exception&) {
        throw Error("--mmd-sigmas: '" + part + "' is not a number");
      }
    }
  }
  validate(options.objective);
  validate(options.train);
  make_network(options.student);  // validates the student architecture before any work
  const std::vector<Teacher> teachers = load_teachers(teacher_paths, options.train.device);
  const TrainValSplit data = load_training_split(d);
  ensure_directory(out);
  const TransferSet transfer = strip_labels(data.train);
  HeadLayout head;
  for (const auto& t : teachers) head.tasks.push_back(t.task);
  EpochCallback on_epoch;
  if (data.val.size() > 0) {
    on_epoch = [&](const EpochStats&, NetworkImpl& student) {
      const StudentScores s = evaluate_student(student, head, data.val, 256);
      std::string line = "  val:";
      for (size_t i = 0; i < head.tasks.size(); ++i)
        line += " " + head.tasks[i].name + " " + percent(s.task_accuracy[i]) + "%";
      log_info(line + "  union " + percent(s.union_accuracy) + "%");
    };
  }
  const AmalgamationResult result = amalgamate(teachers, transfer, options, on_epoch);
  const std::string path = out + "/student.pt";
  save_student(result, path, {{"method", options.objective.method}, {"teachers", teacher_paths}});
  std::printf("student (%s, %s, %lld params, %lld outputs) -> %s\n",
              options.objective.method.c_str(), result.student_spec.arch.c_str(),
              static_cast<long long>(count_parameters(*result.student)),
              static_cast<long long>(result.head.total()), path.c_str());
  return 0;
}

int run_eval(const DataOptions& d, const std::string& split,
             const std::vector<std::string>& teacher_paths, const std::string& student_path,
             const std::string& device, int threads, const std::string& json_path) {
  configure_threads(threads);
  require(split == "test" || split == "val", "--split: expected test or val, got '" + split + "'");
  require(!teacher_paths.empty() || !student_path.empty(), "eval: give --teacher and/or --student");
  const std::vector<Teacher> teachers =
      teacher_paths.empty() ? std::vector<Teacher>{} : load_teachers(teacher_paths, device);
  Student student;
  if (!student_path.empty()) student = load_student(student_path, parse_device(device));
  const LabeledImages data =
      split == "test" ? load_idx_split(d.dir, "test") : load_training_split(d).val;
  nlohmann::json report = {{"split", split}, {"tasks", nlohmann::json::array()}};
  std::vector<std::vector<std::string>> rows;
  const std::vector<TaskSpec> tasks = [&] {
    std::vector<TaskSpec> list;
    if (student.network) return student.head.tasks;
    for (const auto& t : teachers) list.push_back(t.task);
    return list;
  }();
  StudentScores scores;
  if (student.network) scores = evaluate_student(*student.network, student.head, data, 256);
  for (size_t i = 0; i < tasks.size(); ++i) {
    nlohmann::json entry = {{"name", tasks[i].name}, {"classes", tasks[i].classes}};
    std::vector<std::string> row = {tasks[i].name, "-", "-"};
    for (const auto& t : teachers) {
      if (t.task.classes == tasks[i].classes) {
        entry["teacher_acc"] = evaluate_teacher(t, data, 256);
        row[1] = percent(entry["teacher_acc"]);
      }
    }
    if (student.network) {
      entry["student_acc"] = scores.task_accuracy[i];
      row[2] = percent(scores.task_accuracy[i]);
    }
    report["tasks"].push_back(entry);
    rows.push_back(row);
  }
  std::vector<std::string> union_row = {"union (task-agnostic)", "-", "-"};
  if (!teachers.empty()) {
    report["union"]["teachers_acc"] = evaluate_ensemble(teachers, data, 256);
    union_row[1] = percent(report["union"]["teachers_acc"]);
  }
  if (student.network) {
    report["union"]["student_acc"] = scores.union_accuracy;
    union_row[2] = percent(scores.union_accuracy);
  }
  rows.push_back(union_row);
  std::printf("Accuracy (%%) on the %s split\n%s", split.c_str(),
              format_table({"task", "teacher", "student"}, rows).c_str());
  if (!json_path.empty()) write_text_atomically(json_path, report.dump(2) + "\n");
  return 0;
}

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "amalgam: one compact student from several expert teachers and unlabeled images "
      "(Common Feature Learning)"};
  app.require_subcommand(1);
  bool quiet = false, verbose = false;
  app.add_flag("-q,--quiet", quiet, "Print results only");
  app.add_flag("-v,--verbose", verbose, "Print more progress");

  // teach
  DataOptions teach_data;
  ModelSpec teach_spec;
  TrainOptions teach_train;
  std::string teach_task, teach_out;
  auto* teach_cmd = app.add_subcommand("teach", "Train one teacher on one task's labeled images");
  add_data_options(teach_cmd, teach_data);
  teach_cmd->add_option("--task", teach_task, "NAME=CLASSES, e.g. A=0-4 or shoes=5,7,9")
      ->required();
  teach_cmd->add_option("--arch", teach_spec.arch, "resnet|vgg|mobilenetv2")->capture_default_str();
  add_model_options(teach_cmd, teach_spec, "");
  add_train_options(teach_cmd, teach_train, teach_out);

  // amalgamate
  DataOptions am_data;
  AmalgamateOptions am;
  std::vector<std::string> am_teachers;
  std::string am_sigmas, am_out;
  auto* am_cmd = app.add_subcommand("amalgamate", "Train one student from several teachers");
  add_data_options(am_cmd, am_data);
  am_cmd->add_option("--teacher", am_teachers, "Teacher model file (repeat for each)")->required();
  am_cmd->add_option("--student", am.student.arch, "Student architecture")->capture_default_str();
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
  bool no_teacher_cache = false;
  am_cmd->add_flag("--no-teacher-cache", no_teacher_cache,
                   "Run the teachers on every batch instead of caching their outputs once");
  add_train_options(am_cmd, am.train, am_out);

  // eval
  DataOptions ev_data;
  std::vector<std::string> ev_teachers;
  std::string ev_student, ev_split = "test", ev_device = "cpu", ev_json;
  int ev_threads = 0;
  auto* ev_cmd = app.add_subcommand("eval", "Accuracy of teachers and a student per task");
  add_data_options(ev_cmd, ev_data);
  ev_cmd->add_option("--teacher", ev_teachers, "Teacher model file (repeat for each)");
  ev_cmd->add_option("--student", ev_student, "Student model file");
  ev_cmd->add_option("--split", ev_split, "test or val")->capture_default_str();
  ev_cmd->add_option("--device", ev_device, "cpu or cuda[:N]")->capture_default_str();
  ev_cmd->add_option("--threads", ev_threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  ev_cmd->add_option("--json", ev_json, "Also write the scores as JSON");

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

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "amalgam: error: %s (see --help)\n", first_line(e.what()).c_str());
    return 2;
  }
  set_log_level(quiet ? LogLevel::kQuiet : verbose ? LogLevel::kVerbose : LogLevel::kInfo);
  try {
    if (*teach_cmd) return run_teach(teach_data, teach_spec, teach_task, teach_train, teach_out);
    am.cache_teachers = !no_teacher_cache;
    am.objective.use_mmd = !no_mmd;
    am.objective.use_reconstruction = !no_reconstruction;
    if (*am_cmd) return run_amalgamate(am_data, am, am_teachers, am_sigmas, am_out);
    if (*ev_cmd)
      return run_eval(ev_data, ev_split, ev_teachers, ev_student, ev_device, ev_threads, ev_json);
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
  } catch (const Error& e) {
    std::fprintf(stderr, "amalgam: error: %s\n", e.what());
    return 1;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "amalgam: error: %s\n", first_line(e.what_without_backtrace()).c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amalgam: error: %s\n", first_line(e.what()).c_str());
    return 1;
  }
  return 0;
}

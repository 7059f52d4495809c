// amalgam: the command-line front end. It owns all option parsing; the work is the library's.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "app/data_sources.h"
#include "app/demo.h"
#include "app/reproduce.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "data/dataset.h"
#include "evaluation/evaluate.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"
#include "reporting/table.h"
#include "teachers/teacher.h"
#include "training/amalgamate.h"
#include "training/student_io.h"
#include "training/teach.h"

namespace {

using namespace amalgam;

// Options of the images every command reads.
struct DataOptions {
  DataSource source;
  std::string on_bad_image = "fail";
  InputConventions input;
  std::string input_size;
};

void add_data_options(CLI::App* cmd, DataOptions& d) {
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
  cmd->add_option("--on-bad-image", d.on_bad_image,
                  "An unreadable image file: skip (report it) or fail")
      ->capture_default_str();
  cmd->add_option("--input-size", d.input_size,
                  "Input HxW (or N for NxN) of TorchScript models without a sidecar, and of "
                  "decoded images");
  cmd->add_option("--channels", d.input.channels, "Input channels (1 or 3) of the same");
  cmd->add_option("--mean", d.input.mean, "Per-channel mean of the same (one value or one each)")
      ->delimiter(',');
  cmd->add_option("--std", d.input.std, "Per-channel std of the same (one value or one each)")
      ->delimiter(',');
}

// Resolves the textual data options once parsing is done.
DataOptions resolved(DataOptions d) {
  d.source.on_bad_image = parse_bad_image_policy(d.on_bad_image);
  if (!d.input_size.empty()) parse_input_size(d.input_size, d.input);
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

// The task and labeled images `teach` trains on: a task of an IDX data set, or a labeled folder
// (all its classes, or those --task selects by index).
struct TeachingData {
  TaskSpec task;
  TrainValSplit split;
  InputSpec input;
};

TeachingData teaching_data(const DataOptions& d, const std::string& task_text) {
  TeachingData out;
  if (d.source.is_idx()) {
    require(!task_text.empty(), "--task: required with IDX data (e.g. A=0-4)");
    out.task = parse_task(task_text);
    const TrainValSplit split = load_training_split(d.source);
    out.split = {select_task(split.train, out.task),
                 d.source.val_size > 0 ? select_task(split.val, out.task) : LabeledImages{}};
    out.input.channels = split.train.images.size(1);
    out.input.height = split.train.images.size(2);
    out.input.width = split.train.images.size(3);
    return out;
  }
  ImageFolderOptions geometry;
  geometry.channels = d.input.channels;
  geometry.height = d.input.height;
  geometry.width = d.input.width;
  const LabeledFolder folder = load_teaching_folder(d.source, geometry);
  const auto k = static_cast<int64_t>(folder.class_names.size());
  if (task_text.find('=') != std::string::npos) {
    out.task = parse_task(task_text);
  } else {
    out.task.name = task_text.empty()
                        ? std::filesystem::path(d.source.dirs.front()).filename().string()
                        : task_text;
    for (int64_t i = 0; i < k; ++i) out.task.classes.push_back(i);
  }
  for (int64_t c : out.task.classes) {
    require(c >= 0 && c < k, "--task: class " + std::to_string(c) + " is not one of the folder's " +
                                 std::to_string(k) + " classes (0.." + std::to_string(k - 1) + ")");
    out.task.class_names.push_back(folder.class_names[static_cast<size_t>(c)]);
  }
  const int64_t val_size = d.source.val_size >= 0 && d.source.val_size < folder.data.size()
                               ? d.source.val_size
                               : folder.data.size() / 10;
  const TrainValSplit split = split_train_val(folder.data, val_size, d.source.split_seed);
  out.split = {
      select_task(subsample(split.train, d.source.limit, d.source.split_seed + 1), out.task),
      val_size > 0 ? select_task(split.val, out.task) : LabeledImages{}};
  out.input.channels = folder.data.images.size(1);
  out.input.height = folder.data.images.size(2);
  out.input.width = folder.data.images.size(3);
  out.input.mean.assign(static_cast<size_t>(out.input.channels), 0.5);
  out.input.std.assign(static_cast<size_t>(out.input.channels), 0.25);
  return out;
}

int run_teach(const DataOptions& d, ModelSpec spec, const std::string& task_text,
              const TrainOptions& t, std::string out) {
  configure_threads(t.threads);
  validate(t);
  if (out.empty()) out = default_run_dir("teach");
  const TeachingData data = teaching_data(d, task_text);
  spec.input = data.input;
  if (!d.input.mean.empty()) spec.input.mean = d.input.mean;
  if (!d.input.std.empty()) spec.input.std = d.input.std;
  spec.num_classes = data.task.size();
  make_network(spec);  // validates the architecture before any training
  ensure_directory(out);
  const TeachResult result = teach(spec, data.task, data.split.train, data.split.val, t);
  nlohmann::json extra = {{"epochs", t.epochs}, {"seconds", result.seconds}};
  if (!result.val_accuracy.empty()) extra["val_accuracy"] = result.val_accuracy.back();
  const std::string path = out + "/teacher.pt";
  save_teacher(*result.network, spec, data.task, path, extra);
  std::printf("teacher %s (%s, %lld params) -> %s", data.task.name.c_str(), spec.arch.c_str(),
              static_cast<long long>(count_parameters(*result.network)), path.c_str());
  if (!result.val_accuracy.empty())
    std::printf("  val acc %s%%", percent(result.val_accuracy.back()).c_str());
  std::printf("\n");
  return 0;
}

// The student a run trains: a zoo architecture (nullptr: amalgamate builds it), or a user's
// TorchScript file given as PATH.pt:LAYER.
Network user_student(const std::string& text, const DataOptions& d, const std::string& device) {
  for (const auto& arch : zoo_architectures())
    if (text == arch) return nullptr;
  const ModelRef ref = parse_model_ref(text);
  require(std::filesystem::is_regular_file(ref.path),
          "--student: unknown architecture '" + text +
              "' (expected resnet, vgg, mobilenetv2, or a TorchScript file PATH.pt:LAYER)");
  require(!ref.layer.empty(), "--student: " + ref.path +
                                  " needs :LAYER, the submodule whose output is its feature map");
  return load_torchscript_network(ref.path, ref.layer, resolve_conventions(ref.path, d.input).input,
                                  parse_device(device));
}

int run_amalgamate(const DataOptions& d, AmalgamateOptions options,
                   const std::vector<std::string>& teacher_refs, const std::string& sigmas,
                   std::string out, const std::string& export_path) {
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
  if (out.empty()) out = default_run_dir("amalgamate");
  require(export_path.empty() || std::filesystem::path(export_path).extension() == ".pt",
          "--export: '" + export_path + "' should end in .pt");
  require(export_path.empty() || std::filesystem::weakly_canonical(export_path) !=
                                     std::filesystem::weakly_canonical(out + "/student.pt"),
          "--export: " + export_path + " is where the run saves its student; choose another path");
  options.student_network = user_student(options.student.arch, d, options.train.device);
  if (!options.student_network)
    make_network(options.student);  // validates the student architecture before any work
  const std::vector<Teacher> teachers =
      load_teachers(teacher_refs, parse_device(options.train.device), d.input);
  LabeledImages val;
  const TransferSet transfer = load_transfer_set(d.source, teachers.front().network->input(), &val);
  ensure_directory(out);
  HeadLayout head;
  for (const auto& t : teachers) head.tasks.push_back(t.task);
  EpochCallback on_epoch;
  if (val.size() > 0) {
    on_epoch = [&](const EpochStats&, NetworkImpl& student) {
      const StudentScores s = evaluate_student(student, head, val, 256);
      std::string line = "  val:";
      for (size_t i = 0; i < head.tasks.size(); ++i)
        line += " " + head.tasks[i].name + " " + percent(s.task_accuracy[i]) + "%";
      log_info(line + "  union " + percent(s.union_accuracy) + "%");
    };
  }
  const AmalgamationResult result = amalgamate(teachers, transfer, options, on_epoch);
  const std::string path = out + "/student.pt";
  save_student(result, path, {{"method", options.objective.method}, {"teachers", teacher_refs}});
  std::printf("student (%s, %s, %lld params, %lld outputs) -> %s\n",
              options.objective.method.c_str(), result.student_spec.arch.c_str(),
              static_cast<long long>(count_parameters(*result.student)),
              static_cast<long long>(result.head.total()), path.c_str());
  if (!export_path.empty()) {
    const double diff =
        export_student(*result.student, result.head, export_path,
                       {{"method", options.objective.method}, {"teachers", teacher_refs}});
    std::printf("exported TorchScript student -> %s (reloaded: max |logit difference| %.2g)\n",
                export_path.c_str(), diff);
  }
  return 0;
}

int run_eval(const DataOptions& d, const std::string& split,
             const std::vector<std::string>& teacher_paths, const std::string& student_path,
             const std::string& device, int threads, const std::string& json_path) {
  configure_threads(threads);
  require(!teacher_paths.empty() || !student_path.empty(), "eval: give --teacher and/or --student");
  const std::vector<Teacher> teachers =
      teacher_paths.empty() ? std::vector<Teacher>{}
                            : load_teachers(teacher_paths, parse_device(device), d.input);
  Student student;
  if (!student_path.empty()) student = load_student(student_path, parse_device(device));
  nlohmann::json report = {{"split", d.source.is_idx() ? split : d.source.dirs.front()},
                           {"tasks", nlohmann::json::array()}};
  std::vector<std::vector<std::string>> rows;
  const std::vector<TaskSpec> tasks = [&] {
    std::vector<TaskSpec> list;
    if (student.network) return student.head.tasks;
    for (const auto& t : teachers) list.push_back(t.task);
    return list;
  }();
  const InputSpec& input =
      student.network ? student.network->input() : teachers.front().network->input();
  const LabeledImages data = load_scoring_set(d.source, split, input, tasks);
  StudentScores scores;
  if (student.network) scores = evaluate_student(*student.network, student.head, data, 256);
  for (size_t i = 0; i < tasks.size(); ++i) {
    nlohmann::json entry = {{"name", tasks[i].name}, {"classes", tasks[i].classes}};
    std::vector<std::string> row = {tasks[i].name, "-", "-"};
    if (!has_task_images(data.labels, tasks[i])) {
      row[1] = row[2] = "no images";
      report["tasks"].push_back(entry);
      rows.push_back(row);
      continue;
    }
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
  std::printf("Accuracy (%%) on %s\n%s",
              (d.source.is_idx() ? "the " + split + " split" : d.source.dirs.front()).c_str(),
              format_table({"task", "teacher", "student"}, rows).c_str());
  if (!json_path.empty()) write_text_atomically(json_path, report.dump(2) + "\n");
  return 0;
}

// Logits and per-task predictions of a student for every image under the folders, as JSON.
int run_predict(const DataOptions& d, const std::string& model_path, const std::string& out_path,
                const std::string& device, int threads) {
  configure_threads(threads);
  const Student student = load_student(model_path, parse_device(device));
  ImageFolderOptions geometry;
  geometry.channels = student.network->input().channels;
  geometry.height = student.network->input().height;
  geometry.width = student.network->input().width;
  geometry.on_bad_image = d.source.on_bad_image;
  std::vector<std::string> files;
  const at::Tensor images = load_image_tree(d.source.dirs, geometry, &files);
  const at::Tensor logits = predict_logits(*student.network, images, 256).contiguous();
  nlohmann::json result = {{"model", model_path}, {"images", nlohmann::json::array()}};
  for (int64_t i = 0; i < logits.size(0); ++i) {
    const at::Tensor row = logits[i];
    nlohmann::json entry = {
        {"file", files[static_cast<size_t>(i)]},
        {"logits", std::vector<float>(row.data_ptr<float>(), row.data_ptr<float>() + row.numel())}};
    for (size_t t = 0; t < student.head.tasks.size(); ++t) {
      const TaskSpec& task = student.head.tasks[t];
      const int64_t best =
          row.slice(0, student.head.offset(t), student.head.offset(t) + task.size())
              .argmax()
              .item<int64_t>();
      entry["predicted"][task.name] =
          task.class_names.empty() ? nlohmann::json(best)
                                   : nlohmann::json(task.class_names[static_cast<size_t>(best)]);
    }
    result["images"].push_back(entry);
  }
  const std::string text = result.dump(1) + "\n";
  if (out_path.empty())
    std::printf("%s", text.c_str());
  else
    write_text_atomically(out_path, text);
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
  teach_cmd->add_option("--task", teach_task,
                        "NAME=CLASSES, e.g. A=0-4 or shoes=5,7,9 (IDX data); with a labeled "
                        "folder: NAME (all classes) or NAME=INDICES of its sorted class folders");
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
  am_cmd
      ->add_option("--teacher", am_teachers,
                   "Teacher: PATH from amalgam teach, or PATH.pt:LAYER, a TorchScript file and "
                   "the submodule whose output is its feature map (repeat for each)")
      ->required();
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
  ev_cmd->add_option("--teacher", ev_teachers, "Teacher: PATH or PATH.pt:LAYER (repeat for each)");
  ev_cmd->add_option("--student", ev_student, "Student file (amalgamate's or an --export)");
  ev_cmd->add_option("--split", ev_split, "test or val")->capture_default_str();
  ev_cmd->add_option("--device", ev_device, "cpu or cuda[:N]")->capture_default_str();
  ev_cmd->add_option("--threads", ev_threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();
  ev_cmd->add_option("--json", ev_json, "Also write the scores as JSON");

  // inspect
  std::string in_path;
  DataOptions in_data;
  in_data.input.channels = 3;
  in_data.input_size = "224";
  auto* in_cmd = app.add_subcommand(
      "inspect",
      "Module tree of a TorchScript file with each layer's output shape (to pick LAYER)");
  in_cmd->add_option("model", in_path, "TorchScript file")->required();
  in_cmd->add_option("--input-size", in_data.input_size, "Input HxW (or N)")->capture_default_str();
  in_cmd->add_option("--channels", in_data.input.channels, "Input channels")->capture_default_str();

  // predict
  DataOptions pr_data;
  std::string pr_model, pr_out, pr_device = "cpu";
  int pr_threads = 0;
  auto* pr_cmd = app.add_subcommand("predict", "Logits and per-task predictions for image folders");
  pr_cmd->add_option("--model", pr_model, "Student file (amalgamate's or an --export)")->required();
  pr_cmd->add_option("--data", pr_data.source.dirs, "Image folder(s)")->required();
  pr_cmd->add_option("--on-bad-image", pr_data.on_bad_image, "skip or fail")->capture_default_str();
  pr_cmd->add_option("--json", pr_out, "Write the JSON here (default: stdout)");
  pr_cmd->add_option("--device", pr_device, "cpu or cuda[:N]")->capture_default_str();
  pr_cmd->add_option("--threads", pr_threads, "Intra-op threads (0 = all cores)")
      ->capture_default_str();

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
    if (*teach_cmd)
      return run_teach(resolved(teach_data), teach_spec, teach_task, teach_train, teach_out);
    am.cache_teachers = !no_teacher_cache;
    am.objective.use_mmd = !no_mmd;
    am.objective.use_reconstruction = !no_reconstruction;
    if (*am_cmd)
      return run_amalgamate(resolved(am_data), am, am_teachers, am_sigmas, am_out, am_export);
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

#include "app/commands.h"

#include "app/run_recorder.h"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "data/dataset.h"
#include "evaluation/evaluate.h"
#include "models/torchscript_network.h"
#include "models/zoo.h"
#include "reporting/report.h"
#include "reporting/table.h"
#include "teachers/teacher.h"
#include "training/options_json.h"
#include "training/student_io.h"
#include "training/teach.h"

namespace amalgam {

void to_json(nlohmann::json& j, const DataOptions& d) {
  j = {{"dirs", d.source.dirs},
       {"val_size", d.source.val_size},
       {"split_seed", d.source.split_seed},
       {"limit", d.source.limit},
       {"on_bad_image", d.source.on_bad_image == BadImagePolicy::kSkip ? "skip" : "fail"},
       {"channels", d.input.channels},
       {"height", d.input.height},
       {"width", d.input.width},
       {"mean", d.input.mean},
       {"std", d.input.std}};
}

void from_json(const nlohmann::json& j, DataOptions& d) {
  j.at("dirs").get_to(d.source.dirs);
  j.at("val_size").get_to(d.source.val_size);
  j.at("split_seed").get_to(d.source.split_seed);
  j.at("limit").get_to(d.source.limit);
  d.source.on_bad_image = parse_bad_image_policy(j.at("on_bad_image").get<std::string>());
  j.at("channels").get_to(d.input.channels);
  j.at("height").get_to(d.input.height);
  j.at("width").get_to(d.input.width);
  j.at("mean").get_to(d.input.mean);
  j.at("std").get_to(d.input.std);
}

namespace {

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

// --dry-run: the resolved options and what would be built, without touching data or disk.
void print_dry_run(const DataOptions& d, const AmalgamateOptions& options,
                   const std::vector<std::string>& refs, const std::vector<Teacher>& teachers,
                   const std::string& out, const std::string& export_path) {
  HeadLayout head;
  for (const auto& t : teachers) head.tasks.push_back(t.task);
  Network student = options.student_network;
  ModelSpec spec = options.student;
  if (!student) {
    spec.input = teachers.front().network->input();
    spec.num_classes = head.total();
    student = make_network(spec);
  }
  const std::vector<int64_t> student_shape = feature_shape(*student);
  nlohmann::json summary = {{"out", out},
                            {"teachers", nlohmann::json::array()},
                            {"student",
                             {{"arch", spec.arch},
                              {"parameters", count_parameters(*student)},
                              {"feature_shape", student_shape}}},
                            {"head", nlohmann::json::array()}};
  for (size_t i = 0; i < teachers.size(); ++i) {
    summary["teachers"].push_back({{"ref", refs[i]},
                                   {"task", teachers[i].task.name},
                                   {"classes", teachers[i].task.size()},
                                   {"parameters", count_parameters(*teachers[i].network)},
                                   {"feature_shape", teachers[i].feature_shape}});
    summary["head"].push_back({{"task", head.tasks[i].name},
                               {"begin", head.offset(i)},
                               {"end", head.offset(i) + head.tasks[i].size()}});
  }
  if (options.objective.method == "cfl") {
    CommonFeatureBlockOptions block;
    for (const auto& t : teachers) block.teacher_shapes.push_back(t.feature_shape);
    block.student_shape = student_shape;
    block.common_channels = options.common_channels;
    block.extractor_blocks = options.extractor_blocks;
    summary["common_space"] = {{"channels", options.common_channels},
                               {"grid", {student_shape[1], student_shape[2]}},
                               {"extractor_blocks", options.extractor_blocks},
                               {"block_parameters", count_parameters(*CommonFeatureBlock(block))}};
  }
  const nlohmann::json config = {{"command", "amalgamate"},
                                 {"teachers", refs},
                                 {"data", d},
                                 {"options", options},
                                 {"export", export_path}};
  std::printf("%s\n", nlohmann::json{{"config", config}, {"summary", summary}}.dump(2).c_str());
}

}  // namespace

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

int run_amalgamate(const DataOptions& d, AmalgamateOptions options,
                   const std::vector<std::string>& teacher_refs, const std::string& sigmas,
                   std::string out, const std::string& export_path, bool dry_run,
                   const DistributedOptions& dist) {
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
  validate(dist);
  if (dist.enabled() && !options.group && !dry_run)
    options.group = std::make_shared<ProcessGroup>(dist);
  const bool writer = !options.group || options.group->rank() == 0;
  options.student_network = user_student(options.student.arch, d, options.train.device);
  require(!options.sync_batchnorm || !options.student_network,
          "--sync-batchnorm: " + options.student.arch +
              " is a TorchScript student, whose BatchNorm layers amalgam cannot synchronise "
              "(a zoo student can)");
  if (!options.student_network)
    make_network(options.student);  // validates the student architecture before any work
  const std::vector<Teacher> teachers =
      load_teachers(teacher_refs, parse_device(options.train.device), d.input);
  if (dry_run) {
    print_dry_run(d, options, teacher_refs, teachers, out, export_path);
    return 0;
  }
  LabeledImages val;
  const TransferSet transfer = load_transfer_set(d.source, teachers.front().network->input(), &val);
  install_stop_handlers();
  check_ranks_agree(teachers, transfer, options);
  if (!writer) {
    // Another rank of a data-parallel run: it trains its shards; rank 0 writes everything.
    options.checkpoint_path.clear();
    amalgamate(teachers, transfer, options);
    return 0;
  }
  ensure_directory(out);
  // Everything needed to rerun or resume the run, written once every input has been accepted.
  write_text_atomically(out + "/config.json",
                        nlohmann::json{{"command", "amalgamate"},
                                       {"teachers", teacher_refs},
                                       {"data", d},
                                       {"options", options},
                                       {"export", export_path},
                                       {"world_size", options.group ? options.group->size() : 1}}
                                .dump(2) +
                            "\n");
  options.checkpoint_path = out + "/checkpoint.pt";
  RunRecorder recorder(out, teachers, val, transfer, options);
  AmalgamationResult result =
      amalgamate(teachers, transfer, options, recorder.on_epoch(), nullptr, recorder.hooks());
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
  std::printf("report -> %s\n", recorder.finish(result).c_str());
  return 0;
}

int resume_amalgamate(const std::string& run_dir, int threads, const DistributedOptions& dist) {
  const std::string config_path = run_dir + "/config.json";
  validate(dist);
  std::shared_ptr<ProcessGroup> group;
  if (dist.enabled()) group = std::make_shared<ProcessGroup>(dist);
  const bool writer = !group || group->rank() == 0;
  if (writer) {
    require(std::filesystem::is_regular_file(config_path),
            "--resume: " + config_path + " is missing; is " + run_dir + " a run directory?");
    require(std::filesystem::is_regular_file(run_dir + "/checkpoint.pt"),
            "--resume: " + run_dir + "/checkpoint.pt is missing: the run wrote no checkpoint yet");
  }
  // Only rank 0 needs the run directory: the others get its config.
  std::string config_text = writer ? read_whole_file(config_path) : "";
  if (group) config_text = group->broadcast_bytes(config_text);
  DataOptions d;
  AmalgamateOptions options;
  std::vector<std::string> teachers;
  std::string export_path;
  try {
    const auto config = nlohmann::json::parse(config_text);
    const int world_size = config.value("world_size", 1);
    require(world_size == dist.world_size,
            "--resume: " + run_dir + " was trained by " + std::to_string(world_size) +
                " rank(s); resume it with as many (" +
                (world_size > 1 ? "--nproc " + std::to_string(world_size) : "no --nproc") + ")");
    require(config.value("command", "") == "amalgamate",
            config_path + ": not the config of an amalgamate run");
    config.at("data").get_to(d);
    config.at("options").get_to(options);
    config.at("teachers").get_to(teachers);
    config.at("export").get_to(export_path);
  } catch (const nlohmann::json::exception& e) {
    const std::string what = e.what();
    throw Error(config_path + ": damaged config: " + first_line(what));
  }
  if (threads > 0) options.train.threads = threads;
  options.resume = true;
  options.group = group;
  return run_amalgamate(d, options, teachers, "", run_dir, export_path);
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
  if (student.network)
    scores = evaluate_student(*student.network, student.head, data, kInferenceBatch);
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
        entry["teacher_acc"] = evaluate_teacher(t, data, kInferenceBatch);
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
    report["union"]["teachers_acc"] = evaluate_ensemble(teachers, data, kInferenceBatch);
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
  const at::Tensor logits = predict_logits(*student.network, images, kInferenceBatch).contiguous();
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

}  // namespace amalgam

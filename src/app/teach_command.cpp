// `amalgam teach`: a teacher trained on one task's labeled images, in a run folder that survives
// a kill (teach --resume).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "app/commands.h"
#include "app/data_sources.h"
#include "app/run_config.h"
#include "app/run_errors.h"
#include "app/run_outputs.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/names.h"
#include "core/run_lock.h"
#include "core/runtime.h"
#include "core/signals.h"
#include "data/image_folder.h"
#include "evaluation/evaluate.h"
#include "models/checkpoint.h"
#include "models/zoo.h"
#include "reporting/table.h"
#include "training/teach.h"

namespace amalgam {

namespace {

// The task and labeled images `teach` trains on: a task of an IDX data set, or a labeled folder
// (all its classes, or those --task selects by index).
struct TeachingData {
  TaskSpec task;
  TrainValSplit split;
  InputSpec input;
};

// "--task tops=T-shirt,Coat" on a labeled folder: class folder names become their indices in
// the folder's sorted order (which a list may also give directly: tops=0,4).
std::string task_by_folder_names(const std::string& text, const std::vector<std::string>& names) {
  const auto eq = text.find('=');
  std::string out = text.substr(0, eq + 1);
  std::stringstream parts(text.substr(eq + 1));
  std::string part;
  for (bool first = true; std::getline(parts, part, ','); first = false) {
    const auto it = std::find(names.begin(), names.end(), part);
    AMALGAM_CHECK(it != names.end() || part.find_first_not_of("0123456789-") == std::string::npos,
                  "--task: '" + part + "' is no class folder's name" + did_you_mean(part, names) +
                      " (give folder names or their indices in sorted order)");
    out += (first ? "" : ",") +
           (it == names.end() ? part : std::to_string(std::distance(names.begin(), it)));
  }
  return out;
}

TeachingData teaching_data(const DataOptions& d, const std::string& task_text) {
  TeachingData out;
  if (d.source.is_idx()) {
    AMALGAM_CHECK(!task_text.empty(), "--task: required with IDX data (e.g. A=0-4)");
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
    out.task = parse_task(task_by_folder_names(task_text, folder.class_names));
  } else {
    out.task.name = task_text.empty()
                        ? std::filesystem::path(d.source.dirs.front()).filename().string()
                        : task_text;
    for (int64_t i = 0; i < k; ++i) out.task.classes.push_back(i);
  }
  for (int64_t c : out.task.classes) {
    AMALGAM_CHECK(c >= 0 && c < k, "--task: class " + std::to_string(c) +
                                       " is not one of the folder's " + std::to_string(k) +
                                       " classes (0.." + std::to_string(k - 1) + ")");
    out.task.class_names.push_back(folder.class_names[static_cast<size_t>(c)]);
  }
  // The task's images first, then the split: a small folder's validation share would otherwise
  // miss a task of a few classes altogether.
  const LabeledImages chosen = select_task(folder.data, out.task);
  const int64_t val_size = d.source.val_size >= 0 && d.source.val_size < chosen.size()
                               ? d.source.val_size
                               : chosen.size() / 10;
  const TrainValSplit split = split_train_val(chosen, val_size, d.source.split_seed);
  out.split = {subsample(split.train, d.source.limit, d.source.split_seed + 1),
               val_size > 0 ? split.val : LabeledImages{}};
  out.input.channels = folder.data.images.size(1);
  out.input.height = folder.data.images.size(2);
  out.input.width = folder.data.images.size(3);
  out.input.mean.assign(static_cast<size_t>(out.input.channels), 0.5);
  out.input.std.assign(static_cast<size_t>(out.input.channels), 0.25);
  return out;
}

// The teacher `c` describes, with the input conventions of its data.
ModelSpec teacher_spec(const TeachCommand& c, const TeachingData& data) {
  ModelSpec spec = c.model;
  spec.input = data.input;
  if (!c.data.input.mean.empty()) spec.input.mean = c.data.input.mean;
  if (!c.data.input.std.empty()) spec.input.std = c.data.input.std;
  spec.num_classes = data.task.size();
  return spec;
}

// Refuses a new run in a folder that holds an older one (unless `replace`), then clears it.
void clear_for_new_run(const std::string& dir, bool replace) {
  const bool held = holds_a_run(dir) || std::filesystem::exists(dir + "/teacher.pt");
  AMALGAM_CHECK(!held || replace, "--out: " + dir +
                                      " already holds a run; continue it with amalgam teach "
                                      "--resume " +
                                      dir + ", or give --overwrite to replace it");
  remove_old_run(dir);
  std::filesystem::remove(dir + "/teacher.pt");
  std::filesystem::remove(dir + "/teacher.json");
}

// The teach run `c`; `resume` continues the one recorded in c.out. `option` names the folder in
// errors (--out or --resume); `replace`: a new run may replace the folder's older one.
int teach_in(const TeachCommand& c, bool resume, const char* option, bool replace) {
  install_stop_handlers();
  configure_threads(c.train.threads);
  validate(c.train);
  // A folder that exists is taken before any data is read, so a second writer is refused at
  // once; a new folder is made only once every input has been accepted.
  std::optional<RunLock> lock;
  if (std::filesystem::is_directory(c.out)) lock.emplace(c.out, option);
  if (!resume && std::filesystem::is_directory(c.out) && !replace)
    clear_for_new_run(c.out, false);  // refused before any data is read
  const TeachingData data = teaching_data(c.data, c.task);
  const ModelSpec spec = teacher_spec(c, data);
  make_network(spec);  // validates the architecture before any training
  ensure_directory(c.out);
  if (!lock) lock.emplace(c.out, option);
  const auto record = [&c] {
    write_text_atomically(c.out + "/config.json", teach_config(c).dump(2) + "\n");
  };
  if (!resume) {
    clear_for_new_run(c.out, true);
    record();
  }
  TeachRun run;
  run.checkpoint_path = c.out + "/checkpoint.pt";
  run.resume = resume;
  run.checkpoint_every = c.checkpoint_every;
  // A resumed run records what --resume changed (--epochs, --lr) once its checkpoint is accepted.
  if (resume) run.on_resumed = record;
  with_resume_hints("teach", c.out, c.train.batch_size, [&] {
    const TeachResult result =
        teach(spec, data.task, data.split.train, data.split.val, c.train, run);
    nlohmann::json extra = {{"epochs", c.train.epochs}, {"seconds", result.seconds}};
    if (!result.val_accuracy.empty()) extra["val_accuracy"] = result.val_accuracy.back();
    const std::string path = c.out + "/teacher.pt";
    save_teacher(*result.network, spec, data.task, path, extra);
    std::printf("teacher %s (%s, %lld params) -> %s", data.task.name.c_str(), spec.arch.c_str(),
                static_cast<long long>(count_parameters(*result.network)), path.c_str());
    if (!result.val_accuracy.empty())
      std::printf("  val acc %s%%", percent(result.val_accuracy.back()).c_str());
    std::printf("\n");
  });
  return 0;
}

}  // namespace

int run_teach(TeachCommand c) {
  AMALGAM_CHECK(c.checkpoint_every >= 0, "--checkpoint-every: must be >= 0");
  if (c.out.empty()) c.out = default_run_dir("teach");
  return teach_in(c, false, "--out", c.overwrite);
}

int resume_teach(const std::string& run_dir, const ResumeOverrides& overrides) {
  const std::string config_path = run_dir + "/config.json";
  AMALGAM_CHECK(std::filesystem::is_regular_file(config_path),
                "--resume: " + config_path + " is missing; is " + run_dir + " a teach run?");
  TeachCommand c = read_teach_config(read_whole_file(config_path), config_path);
  c.out = run_dir;
  apply_resume_overrides(overrides, run_dir, c.train);
  // Stopped before its first checkpoint: nothing was trained, so the run starts again.
  const bool from_start = !std::filesystem::is_regular_file(run_dir + "/checkpoint.pt");
  if (from_start) log_info("teach: " + run_dir + " has no checkpoint yet; starting the run again");
  return teach_in(c, !from_start, "--resume", true);
}

}  // namespace amalgam

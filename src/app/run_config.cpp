#include "app/run_config.h"

#include "core/json_file.h"
#include "method/objective.h"
#include "training/options_json.h"

namespace amalgam {

void to_json(nlohmann::json& j, const DataOptions& d) {
  j = {{"dirs", d.source.dirs},
       {"val_size", d.source.val_size},
       {"split_seed", d.source.split_seed},
       {"limit", d.source.limit},
       {"on_bad_image", d.source.on_bad_image == BadImagePolicy::kSkip ? "skip" : "fail"},
       {"image_memory_mib", d.source.image_memory_mib},
       {"workers", d.source.workers},
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
  // Absent from run directories written before streaming, which held every image in memory: a
  // resumed old run keeps doing so.
  d.source.image_memory_mib = j.value("image_memory_mib", kUnlimitedImageMemory);
  d.source.workers = j.value("workers", DataSource{}.workers);
  j.at("channels").get_to(d.input.channels);
  j.at("height").get_to(d.input.height);
  j.at("width").get_to(d.input.width);
  j.at("mean").get_to(d.input.mean);
  j.at("std").get_to(d.input.std);
}

namespace {

// Refuses the config of another command's run, saying which command continues it.
void check_command(const JsonFields& fields, const std::string& command) {
  const std::string recorded = fields.get<std::string>("command");
  if (recorded == command) return;
  const bool known = recorded == "teach" || recorded == "amalgamate";
  throw fields.error("command",
                     "is \"" + recorded + "\", not \"" + command + "\"" +
                         (known ? ": continue that run with amalgam " + recorded + " --resume"
                                : ": not the config of an amalgam run"));
}

}  // namespace

nlohmann::json run_config(const AmalgamateCommand& c, int world_size) {
  return {{"command", "amalgamate"}, {"teachers", c.teachers}, {"data", c.data},
          {"val_data", c.val_dir},   {"options", c.config},    {"export", c.export_path},
          {"world_size", world_size}};
}

RecordedRun read_run_config(const std::string& text, const std::string& path) {
  const nlohmann::json config = parse_json(text, path);
  const JsonFields fields(config, path);
  // "networks" and "routing_check" are records of the run, written when it starts.
  check_command(fields, "amalgamate");
  fields.only({"command", "teachers", "data", "val_data", "options", "export", "world_size",
               "networks", "routing_check"});
  RecordedRun run;
  AmalgamateCommand& c = run.command;
  run.world_size = fields.get<int>("world_size", 1);
  if (run.world_size < 1) throw fields.error("world_size", "must be at least 1");
  c.teachers = fields.get<std::vector<std::string>>("teachers");
  if (c.teachers.empty()) throw fields.error("teachers", "lists no teacher");
  for (const auto& t : c.teachers)
    if (t.empty()) throw fields.error("teachers", "holds an empty name");
  c.export_path = fields.get<std::string>("export");
  c.val_dir = fields.get<std::string>("val_data", "");
  c.data = read_struct<DataOptions>(fields.at("data"), path + " \"data\"");
  // The objective has a reader of its own: its parts follow its method, and it maps the names of
  // older amalgams' configs.
  nlohmann::json options = fields.at("options");
  nlohmann::json objective;
  if (options.is_object() && options.contains("objective")) {
    objective = options.at("objective");
    options.erase("objective");
  }
  c.config = read_struct<AmalgamateConfig>(options, path + " \"options\"");
  if (!objective.is_null())
    c.config.objective = read_objective_config(objective, path + " \"options\"");
  try {
    validate(c.config.objective);
    validate(c.config.train);
  } catch (const Error& e) {
    throw Error(path + " \"options\": " + e.what());
  }
  if (fields.has("routing_check")) {
    run.routing_check = fields.at("routing_check");
    if (!run.routing_check.is_object() && !run.routing_check.is_null())
      throw fields.error("routing_check", "must be an object, got " + json_kind(run.routing_check));
  }
  return run;
}

void apply_resume_overrides(const ResumeOverrides& overrides, const std::string& run_dir,
                            TrainOptions& train) {
  if (overrides.threads > 0) train.threads = overrides.threads;
  if (overrides.lr > 0) train.lr = overrides.lr;
  if (overrides.max_loss_growth >= 0) train.max_loss_growth = overrides.max_loss_growth;
  if (overrides.epochs > 0) {
    AMALGAM_CHECK(train.steps == 0, "--epochs: " + run_dir + " was started with --steps " +
                                        std::to_string(train.steps) +
                                        ", which fixes its length; --resume cannot extend it");
    AMALGAM_CHECK(overrides.epochs >= train.epochs,
                  "--epochs: " + run_dir + " has " + std::to_string(train.epochs) +
                      " epochs; --resume can extend a run, not shorten it");
    train.epochs = overrides.epochs;
  }
}

nlohmann::json teach_config(const TeachCommand& c) {
  return {{"command", "teach"}, {"data", c.data},   {"model", c.model},
          {"task", c.task},     {"train", c.train}, {"checkpoint_every", c.checkpoint_every}};
}

TeachCommand read_teach_config(const std::string& text, const std::string& path) {
  const nlohmann::json config = parse_json(text, path);
  const JsonFields fields(config, path);
  check_command(fields, "teach");
  fields.only({"command", "data", "model", "task", "train", "checkpoint_every"});
  TeachCommand c;
  c.data = read_struct<DataOptions>(fields.at("data"), path + " \"data\"");
  c.model = read_struct<ModelSpec>(fields.at("model"), path + " \"model\"");
  c.task = fields.get<std::string>("task");
  c.train = read_struct<TrainOptions>(fields.at("train"), path + " \"train\"");
  if (!fields.at("train").contains("head_lr_mult"))  // teach's own default, not TrainOptions'
    c.train.head_lr_mult = teach_defaults().head_lr_mult;
  c.checkpoint_every = fields.get<int64_t>("checkpoint_every");
  if (c.checkpoint_every < 0) throw fields.error("checkpoint_every", "must be >= 0");
  try {
    validate(c.train);
  } catch (const Error& e) {
    throw Error(path + " \"train\": " + e.what());
  }
  return c;
}

}  // namespace amalgam

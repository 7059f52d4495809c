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

nlohmann::json run_config(const AmalgamateCommand& c, int world_size) {
  return {{"command", "amalgamate"}, {"teachers", c.teachers}, {"data", c.data},
          {"val_data", c.val_dir},   {"options", c.config},    {"export", c.export_path},
          {"world_size", world_size}};
}

RecordedRun read_run_config(const std::string& text, const std::string& path) {
  const nlohmann::json config = parse_json(text, path);
  const JsonFields fields(config, path);
  // "networks" and "routing_check" are records of the run, written when it starts.
  fields.only({"command", "teachers", "data", "val_data", "options", "export", "world_size",
               "networks", "routing_check"});
  if (fields.get<std::string>("command") != "amalgamate")
    throw fields.error("command", "is not \"amalgamate\": not the config of an amalgamate run");
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

}  // namespace amalgam

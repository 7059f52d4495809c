#include "reporting/run_files.h"

#include <cmath>
#include <filesystem>
#include <sstream>

#include "core/atomic_file.h"
#include "core/json_file.h"
#include "core/names.h"
#include "core/run_lock.h"

namespace amalgam {
namespace {

// An object of finite numbers (loss terms by name), or with `accuracies` numbers in [0, 1].
void check_numbers(const JsonFields& fields, const std::string& key, bool accuracies) {
  if (!fields.has(key)) return;
  const nlohmann::json& value = fields.at(key);
  if (!value.is_object()) throw fields.error(key, "must be an object, got " + json_kind(value));
  for (const auto& [name, number] : value.items()) {
    const bool ok = number.is_number() && std::isfinite(number.get<double>()) &&
                    (!accuracies || (number.get<double>() >= 0 && number.get<double>() <= 1));
    if (!ok)
      throw fields.error(key, "\"" + name + "\" must be " +
                                  (accuracies ? "an accuracy in [0, 1]" : "a finite number"));
  }
}

void check_non_negative(const JsonFields& fields, const std::string& key) {
  if (fields.has(key) && fields.get<double>(key) < 0)
    throw fields.error(key, "must not be negative");
}

void check_metrics_record(const nlohmann::json& record, const std::string& where) {
  const JsonFields fields(record, where);
  const std::string type = fields.get<std::string>("type");
  if (type == "step") {
    fields.only({"type", "epoch", "step", "global_step", "loss", "lrs", "images_per_second"});
    for (const char* key : {"epoch", "step", "global_step"})
      if (fields.get<int64_t>(key) < 0) throw fields.error(key, "must not be negative");
    check_numbers(fields, "loss", false);
    for (double lr : fields.get<std::vector<double>>("lrs", {}))
      if (!std::isfinite(lr)) throw fields.error("lrs", "holds a value that is not finite");
    check_non_negative(fields, "images_per_second");
  } else if (type == "epoch") {
    fields.only({"type", "epoch", "loss", "seconds", "images_per_second", "val"});
    if (fields.get<int64_t>("epoch") < 0) throw fields.error("epoch", "must not be negative");
    check_numbers(fields, "loss", false);
    check_numbers(fields, "val", true);
    check_non_negative(fields, "seconds");
    check_non_negative(fields, "images_per_second");
  } else if (type == "teachers") {
    fields.only({"type", "val"});
    check_numbers(fields, "val", true);
  } else if (type == "summary") {
    fields.only({"type", "student", "student_params", "seconds", "student_val"});
    fields.get<std::string>("student", "");
    if (fields.get<int64_t>("student_params", 0) < 0)
      throw fields.error("student_params", "must not be negative");
    check_non_negative(fields, "seconds");
    if (fields.has("student_val") && !fields.at("student_val").is_null())
      check_numbers(fields, "student_val", true);
  } else {
    throw fields.error("type", "is '" + type + "', not a metrics record type" +
                                   did_you_mean(type, {"step", "epoch", "teachers", "summary"}));
  }
}

void check_config(const nlohmann::json& config, const std::string& where) {
  const JsonFields fields(config, where);
  fields.only({"command", "teachers", "data", "val_data", "options", "export", "world_size",
               "networks", "routing_check"});
  fields.get<std::string>("command");
  fields.get<std::vector<std::string>>("teachers", {});
  const JsonFields objective = fields.object("options").object("objective");
  objective.get<std::string>("method", "");
}

void check_embedding(const nlohmann::json& embedding, const std::string& where) {
  const JsonFields fields(embedding, where);
  fields.only({"maps", "colour_by", "legend"});
  fields.get<std::string>("colour_by", "");
  fields.get<std::vector<std::string>>("legend", {});
  const JsonFields maps = fields.object("maps");
  if (!fields.has("maps")) return;
  for (const auto& [name, points] : fields.at("maps").items()) {
    if (!points.is_array()) throw maps.error(name, "must be a list of points");
    for (size_t i = 0; i < points.size(); ++i) {
      const JsonFields point(points[i],
                             where + " \"maps\" \"" + name + "\" point " + std::to_string(i));
      point.only({"x", "y", "class", "group"});
      for (const char* key : {"x", "y"})
        if (!std::isfinite(point.get<double>(key))) throw point.error(key, "must be finite");
      if (point.get<int64_t>("class", 0) < 0) throw point.error("class", "must not be negative");
      point.get<int64_t>("group", 0);
    }
  }
}

}  // namespace

RunFiles parse_run_files(const std::string& config, const std::string& metrics,
                         const std::string& embedding, const std::string& run_dir,
                         bool run_in_progress) {
  RunFiles files;
  const std::string config_path = run_dir + "/config.json";
  files.config = parse_json(config, config_path);
  check_config(files.config, config_path);
  std::istringstream lines(metrics);
  int64_t number = 0;
  for (std::string line; std::getline(lines, line);) {
    ++number;
    if (line.empty()) continue;
    // A running amalgam appends records: its last line may be one it is still writing. Once no
    // run holds the folder, an unterminated line is a damaged file, refused below.
    if (run_in_progress && lines.eof() && metrics.back() != '\n') break;
    const std::string where = run_dir + "/metrics.jsonl line " + std::to_string(number);
    files.metrics.push_back(parse_json(line, where));
    check_metrics_record(files.metrics.back(), where);
  }
  files.embedding = nlohmann::json::object();
  if (!embedding.empty()) {
    const std::string path = run_dir + "/embedding.json";
    files.embedding = parse_json(embedding, path);
    check_embedding(files.embedding, path);
  }
  return files;
}

RunFiles read_run_files(const std::string& run_dir) {
  const std::string config = run_dir + "/config.json";
  AMALGAM_CHECK(std::filesystem::is_regular_file(config),
                "report: " + config + " is missing; is " + run_dir + " a run directory?");
  const auto optional = [&](const std::string& name) {
    const std::string path = run_dir + "/" + name;
    return std::filesystem::is_regular_file(path) ? read_whole_file(path) : std::string();
  };
  return parse_run_files(read_whole_file(config), optional("metrics.jsonl"),
                         optional("embedding.json"), run_dir, RunLock::held(run_dir));
}

}  // namespace amalgam

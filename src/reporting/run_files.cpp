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

void check_config(const nlohmann::json& config, const std::string& where) {
  const JsonFields fields(config, where);
  // A teach run keeps no metrics: say so rather than name a key it has and a report lacks.
  if (fields.get<std::string>("command") == "teach")
    throw fields.error("command", "is \"teach\": report draws amalgamate and demo runs only");
  fields.only({"command", "teachers", "data", "val_data", "options", "export", "world_size",
               "networks", "routing_check"});
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
    files.metrics.push_back(read_metrics_record(parse_json(line, where), where));
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

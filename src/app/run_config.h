// A run's config.json (amalgamate or teach): written when the run starts, read back by --resume and
// checked key by key, since a crash or a hand edit can leave anything in it.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "app/commands.h"

namespace amalgam {

/// The JSON form of a command's data options (config.json "data").
void to_json(nlohmann::json& j, const DataOptions& d);
void from_json(const nlohmann::json& j, DataOptions& d);

/// config.json of an amalgamate run trained by `world_size` ranks: everything needed to rerun or
/// resume it.
nlohmann::json run_config(const AmalgamateCommand& command, int world_size);

/// What --resume reads back from a run's config.json.
struct RecordedRun {
  AmalgamateCommand command;     ///< data, options, teachers, validation folder and export path
  int world_size = 1;            ///< ranks that trained the run
  nlohmann::json routing_check;  ///< the routing check's record (kept as written)
};

/// The run recorded in `text`, the contents of `path`; throws Error naming `path` and the key
/// for a damaged or truncated file, a missing or unknown key, a wrong type or a bad value.
RecordedRun read_run_config(const std::string& text, const std::string& path);

/// Applies what `--resume` of the run in `run_dir` may change to its recorded `train` options;
/// throws Error naming --epochs when it would shorten the run.
void apply_resume_overrides(const ResumeOverrides& overrides, const std::string& run_dir,
                            TrainOptions& train);

/// config.json of a teach run: everything needed to resume it.
nlohmann::json teach_config(const TeachCommand& command);

/// The teach run recorded in `text`, the contents of `path`; throws Error naming `path` and the
/// key for a damaged file, a missing or unknown key, a wrong type or a bad value.
TeachCommand read_teach_config(const std::string& text, const std::string& path);

}  // namespace amalgam

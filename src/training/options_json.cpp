#include "training/options_json.h"

#include "core/error.h"

namespace amalgam {
namespace {

const std::vector<std::pair<Schedule, const char*>>& schedule_names() {
  static const std::vector<std::pair<Schedule, const char*>> names = {
      {Schedule::kCosine, "cosine"}, {Schedule::kStep, "step"}, {Schedule::kConstant, "constant"}};
  return names;
}

}  // namespace

Schedule parse_schedule(const std::string& name) {
  for (const auto& [schedule, text] : schedule_names())
    if (name == text) return schedule;
  throw Error("--schedule: expected cosine, step or constant, got '" + name + "'");
}

void to_json(nlohmann::json& j, const Schedule& schedule) {
  for (const auto& [value, text] : schedule_names())
    if (value == schedule) j = text;
}

void from_json(const nlohmann::json& j, Schedule& schedule) {
  schedule = parse_schedule(j.get<std::string>());
}

}  // namespace amalgam

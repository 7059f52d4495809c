#include "data/head_layout.h"

#include <nlohmann/json.hpp>

namespace amalgam {

int64_t HeadLayout::total() const {
  return offset(tasks.size());
}

int64_t HeadLayout::offset(size_t i) const {
  int64_t offset = 0;
  for (size_t t = 0; t < i && t < tasks.size(); ++t) offset += tasks[t].size();
  return offset;
}

std::vector<int64_t> HeadLayout::class_ids() const {
  std::vector<int64_t> ids;
  for (const auto& task : tasks) ids.insert(ids.end(), task.classes.begin(), task.classes.end());
  return ids;
}

void to_json(nlohmann::json& j, const HeadLayout& layout) {
  j = nlohmann::json::array();
  for (size_t i = 0; i < layout.tasks.size(); ++i) {
    nlohmann::json entry = layout.tasks[i];
    entry["offset"] = layout.offset(i);
    j.push_back(entry);
  }
}

void from_json(const nlohmann::json& j, HeadLayout& layout) {
  layout.tasks.clear();
  for (const auto& entry : j) layout.tasks.push_back(entry.get<TaskSpec>());
}

}  // namespace amalgam

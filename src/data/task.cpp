#include "data/task.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>
#include <sstream>

#include "core/error.h"

namespace amalgam {
namespace {

int64_t parse_id(const std::string& token, const std::string& option, const std::string& text) {
  size_t used = 0;
  int64_t value = -1;
  try {
    value = std::stoll(token, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != token.size() || token.empty() || value < 0)
    throw Error(option + ": '" + text + "': '" + token + "' is not a class id (a number >= 0)");
  return value;
}

}  // namespace

int64_t TaskSpec::local_index(int64_t cls) const {
  auto it = std::find(classes.begin(), classes.end(), cls);
  return it == classes.end() ? -1 : static_cast<int64_t>(it - classes.begin());
}

TaskSpec parse_task(const std::string& text, const std::string& option) {
  TaskSpec task;
  std::string spec = text;
  const auto eq = text.find('=');
  if (eq != std::string::npos) {
    task.name = text.substr(0, eq);
    spec = text.substr(eq + 1);
    AMALGAM_CHECK(!task.name.empty(), option + ": '" + text + "': empty task name before '='");
  } else {
    task.name = text;
  }
  std::stringstream parts(spec);
  std::string part;
  std::set<int64_t> seen;
  while (std::getline(parts, part, ',')) {
    const auto dash = part.find('-', 1);
    int64_t lo = 0, hi = 0;
    if (dash == std::string::npos) {
      lo = hi = parse_id(part, option, text);
    } else {
      lo = parse_id(part.substr(0, dash), option, text);
      hi = parse_id(part.substr(dash + 1), option, text);
      AMALGAM_CHECK(lo <= hi, option + ": '" + text + "': range " + part + " is empty");
    }
    for (int64_t c = lo; c <= hi; ++c) {
      AMALGAM_CHECK(seen.insert(c).second,
                    option + ": '" + text + "': class " + std::to_string(c) + " is listed twice");
      task.classes.push_back(c);
    }
  }
  AMALGAM_CHECK(task.classes.size() >= 2,
                option + ": '" + text + "': a task needs at least two classes");
  return task;
}

void check_disjoint(const std::vector<TaskSpec>& tasks) {
  std::set<int64_t> classes;
  std::set<std::string> names;
  for (const auto& task : tasks) {
    AMALGAM_CHECK(names.insert(task.name).second,
                  "teachers: two tasks are both named '" + task.name + "'");
    for (int64_t c : task.classes)
      AMALGAM_CHECK(classes.insert(c).second, "teachers: class " + std::to_string(c) +
                                                  " belongs to more than one task (task '" +
                                                  task.name + "'); tasks must be disjoint");
  }
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                                 "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                                 "Bag",         "Ankle boot"};
  return names;
}

void to_json(nlohmann::json& j, const TaskSpec& task) {
  j = nlohmann::json{{"name", task.name}, {"classes", task.classes}};
  if (!task.class_names.empty()) j["class_names"] = task.class_names;
}

void from_json(const nlohmann::json& j, TaskSpec& task) {
  task.name = j.at("name").get<std::string>();
  task.classes = j.at("classes").get<std::vector<int64_t>>();
  task.class_names = j.value("class_names", std::vector<std::string>{});
}

}  // namespace amalgam

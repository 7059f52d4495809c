// A task: a named subset of a data set's classes, as one teacher knows them.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace amalgam {

/// One teacher's task. Its k classes are data-set class ids; the teacher's outputs 0..k-1 map to
/// `classes` in order, and that mapping travels with every model trained on it.
struct TaskSpec {
  std::string name;                      ///< a short label used in tables ("A", "shoes")
  std::vector<int64_t> classes;          ///< data-set class ids, in output order
  std::vector<std::string> class_names;  ///< optional human names, same order as `classes`

  /// Number of classes in the task.
  int64_t size() const { return static_cast<int64_t>(classes.size()); }
  /// Output index of data-set class `cls`, or -1 when the task does not contain it.
  int64_t local_index(int64_t cls) const;
};

/// Parses "NAME=SPEC" or "SPEC" where SPEC is a list of ids and ranges ("0-4", "5,7,9", "0-2,8").
/// Without a name the task is named after its SPEC. Throws Error naming `option` on bad input.
TaskSpec parse_task(const std::string& text, const std::string& option = "--task");

/// Throws Error when two tasks share a class or a name: a student head needs disjoint tasks.
void check_disjoint(const std::vector<TaskSpec>& tasks);

/// The ten Fashion-MNIST class names.
const std::vector<std::string>& fashion_mnist_class_names();

void to_json(nlohmann::json& j, const TaskSpec& task);
void from_json(const nlohmann::json& j, TaskSpec& task);

}  // namespace amalgam

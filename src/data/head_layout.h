// The student's head: the teachers' classes concatenated in teacher order.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <vector>

#include "data/task.h"

namespace amalgam {

/// Which slice of the student's logits answers which task.
struct HeadLayout {
  std::vector<TaskSpec> tasks;  ///< in teacher order

  /// Total number of outputs.
  int64_t total() const;
  /// First output index of task `i`.
  int64_t offset(size_t i) const;
  /// Data-set class id of every output, in order.
  std::vector<int64_t> class_ids() const;
};

void to_json(nlohmann::json& j, const HeadLayout& layout);
void from_json(const nlohmann::json& j, HeadLayout& layout);

}  // namespace amalgam

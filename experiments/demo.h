// The built-in demo: two heterogeneous Fashion-MNIST teachers amalgamated by the default method
// and by plain KD.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

namespace amalgam {

/// Options of `amalgam demo`.
struct DemoOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  ///< IDX folder
  std::string out_dir = "runs/demo";  ///< teachers and students are written (and reused) here
  std::string json_path;              ///< also write the results as JSON here ("" = no)
  bool quick = false;                 ///< reduced data and epochs (about a minute)
  bool retrain_teachers = false;      ///< ignore teachers trained by an earlier run
  int threads = 0;                    ///< intra-op threads (0 = all cores)
  std::string device = "cpu";         ///< cpu | cuda[:N]
  std::string precision = "fp32";     ///< fp32 | bf16 | auto, of every training run
  uint64_t seed = 0;                  ///< seeds every training run
};

/// One task's row of the demo table.
struct DemoTaskRow {
  std::string name;              ///< task name
  std::vector<int64_t> classes;  ///< data-set class ids
  double teacher_acc = 0;        ///< teacher on its own task
  double kd_acc = 0;             ///< KD student, task-aware
  double default_acc = 0;        ///< the default method's student, task-aware
};

/// One task-agnostic row of the demo table: the teachers' figure and each student's.
struct DemoUnionRow {
  double teachers = 0;  ///< the teachers' ensemble (concatenated logits)
  double kd = 0;        ///< KD student
  double student = 0;   ///< the default method's student
};

/// Everything the demo measured.
struct DemoResult {
  std::vector<DemoTaskRow> tasks;         ///< per task, test split
  double union_teachers = 0;              ///< ensemble of teachers, union of tasks
  double union_kd = 0;                    ///< KD student, argmax over the whole head
  double union_default = 0;               ///< default student, argmax over the whole head
  DemoUnionRow routing;                   ///< share of images given to their own task's slice
  DemoUnionRow oracle_union;              ///< union were every image routed right (the ceiling)
  double union_teachers_calibrated = 0;   ///< the teachers' union under calibrated routing
  std::map<std::string, int64_t> params;  ///< parameter counts by model
  std::map<std::string, double> seconds;  ///< wall time by phase
  nlohmann::json validation;              ///< the same scores on the validation split
  std::string processor;  ///< where it ran (processor_description): the figures depend on it
};

/// Runs the demo end to end and returns its measurements.
DemoResult run_demo(const DemoOptions& options);

/// The table printed by `amalgam demo`.
std::string format_demo(const DemoResult& result);

/// {"tasks":[{"name","classes","teacher_acc","kd_acc","default_acc"}],"union":{...},"routing":{...},
///  "oracle_union":{...},"params":{...},"seconds":{...},"validation":{...},"processor":"..."}
nlohmann::json demo_json(const DemoResult& result);

}  // namespace amalgam

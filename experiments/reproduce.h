// `amalgam reproduce`: the paper's claim under baselines, ablations and controls, with seeds.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "data/augment.h"
#include "data/digits.h"
#include "data/task.h"

namespace amalgam {

/// Options of `amalgam reproduce`.
struct ReproduceOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  ///< IDX folder
  std::string digits_path = kSklearnDigitsPath;  ///< the cross-domain set-up's digits table
  std::string out_dir = "runs/reproduce";        ///< teachers are written (and reused) here
  std::string json_path;                         ///< also write the results as JSON ("" = no)
  std::string markdown_path;                     ///< also write the markdown tables ("" = no)
  int64_t seeds = 3;                             ///< student seeds per row
  /// What the rows are scored on: "test" (reports) or "val" (choosing settings).
  std::string split = "test";
  bool quick = false;              ///< small data, small models, few epochs
  int64_t train_limit = -1;        ///< training images kept (-1: the preset's; 0: all)
  int64_t student_epochs = 0;      ///< epochs of every student row (0: the preset's)
  AugmentOptions student_augment;  ///< every distilled student row's (teachers: none)
  /// Names to run (empty: all): fmnist-2, fmnist-3, cross-domain, small-rgb.
  std::vector<std::string> benchmarks;
  /// Row keys to run (empty: all): supervised, each method's name (routed-kd, routed-cfl, kd,
  /// cfl, fitnet), cfl-no-mmd, cfl-no-recon, cfl-fixed-space, routed-kd-teachers,
  /// routed-kd-uniform, single, single-per-task.
  std::vector<std::string> rows;
  bool probes = true;          ///< linear probes of the cfl row's common space (seed 0)
  int threads = 0;             ///< intra-op threads (0 = all cores)
  std::string device = "cpu";  ///< cpu | cuda[:N]
};

/// The name of the default student's row (its differences from KD are also "cfl_minus_kd").
constexpr const char* kDefaultStudentRow = "routed-kd (default)";

/// The key of plain KD's row, which every other student row is paired with (the method's name).
std::string kd_row_key();

/// One row: one way of producing a student (or the teachers), scored on every task.
struct ReproduceRow {
  std::string key;          ///< its --rows key ("" for the teachers' rows, which always run)
  std::string name;         ///< e.g. "routed-kd (default)", "kd"
  std::string description;  ///< what the row is
  std::vector<std::vector<double>> task_acc;  ///< [seed][task]; NaN where not applicable
  std::vector<double> union_acc;              ///< per seed; empty when not applicable
  std::vector<double> routing_acc;       ///< per seed: share of images routed to their own task
  std::vector<double> oracle_union_acc;  ///< per seed: union accuracy under perfect routing
  int64_t params = 0;                    ///< parameter count of the model
  double seconds = 0;                    ///< mean wall time per seed
};

/// Linear-probe accuracy on one task.
struct ProbeRow {
  std::string task;           ///< task name
  double student_common = 0;  ///< on the CFL student's common features h_s
  double teacher_common = 0;  ///< on the task teacher's common features h_i
  double teacher_raw = 0;     ///< on the task teacher's own feature map f_i
};

/// Everything measured on one benchmark.
struct BenchmarkResult {
  std::string name;                ///< e.g. "fmnist-2"
  std::vector<TaskSpec> tasks;     ///< in teacher order
  std::vector<std::string> arch;   ///< teacher architectures, same order
  std::vector<ReproduceRow> rows;  ///< in table order
  std::vector<ProbeRow> probes;    ///< per task
  double seconds = 0;              ///< wall time of the benchmark
};

/// The whole suite.
struct ReproduceResult {
  std::vector<BenchmarkResult> benchmarks;  ///< in run order
  nlohmann::json settings;                  ///< the resolved protocol
  double seconds = 0;                       ///< total wall time
};

/// Runs the suite.
ReproduceResult run_reproduce(const ReproduceOptions& options);

/// Markdown tables (mean ± std over seeds).
std::string format_reproduce(const ReproduceResult& result);

/// The same as JSON.
nlohmann::json reproduce_json(const ReproduceResult& result);

}  // namespace amalgam

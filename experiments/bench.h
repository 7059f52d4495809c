// `amalgam bench`: the demo's CFL amalgamation timed at the default precision and at FP32, the
// machine's peak measured at both, and everything a reference implementation needs to rerun the
// same steps (at FP32, where they must agree bitwise) written to one file.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace amalgam {

/// Options of `amalgam bench`.
struct BenchOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";  ///< IDX folder
  int64_t images = 10000;          ///< transfer images (the first of the training split)
  int64_t epochs = 2;              ///< epochs timed
  int64_t batch_size = 128;        ///< images per step
  int64_t check_steps = 3;         ///< first steps whose loss terms the reference must reproduce
  int threads = 0;                 ///< intra-op threads (0 = all cores)
  std::string precision = "auto";  ///< fp32 | bf16 | auto: timed beside an FP32 run
  std::string state_path;          ///< write weights, data and first-step losses here ("" = no)
  bool scaling = false;            ///< also time one epoch per transfer-set size and teacher count
  bool levers = false;             ///< also time the run without the teacher cache
};

/// Runs the benchmark; the JSON holds the precision timed, peak GFLOP/s, epoch times, throughput,
/// peak RSS, the FP32 first steps' loss terms and, with scaling, seconds per epoch by size and by
/// teacher count.
nlohmann::json run_bench(const BenchOptions& options);

}  // namespace amalgam

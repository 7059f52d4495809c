// Run checkpoints: the whole state of an amalgamation run in one file, written atomically, so a
// crash at any instant leaves the last good one and --resume continues exactly.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "training/optimizer.h"
#include "training/training_loop.h"

namespace amalgam {

/// Where a run stands after its last completed step.
struct RunProgress {
  int64_t epoch = 0;                ///< 0-based epoch in progress (== epochs when done)
  int64_t step = 0;                 ///< steps completed in that epoch
  int64_t global_step = 0;          ///< steps completed in the run
  LossValues partial;               ///< loss sums (x images) of the epoch's completed steps
  int64_t seen = 0;                 ///< images of the epoch's completed steps
  std::vector<EpochStats> history;  ///< completed epochs
  double reference_loss = 0;        ///< the run's first step's total loss (0 = no step yet)
};

/// The modules a checkpoint holds.
struct RunModules {
  torch::nn::Module* student = nullptr;    ///< the student network
  torch::nn::Module* objective = nullptr;  ///< the objective with its trainable parts
  ScheduledAdam* optimizer = nullptr;      ///< the optimiser with its moments and step count
};

/// Writes modules, optimiser, LibTorch's CPU generator state, `progress` and `fingerprint` (the
/// config that must match on resume) to `path` atomically.
void save_run_checkpoint(const std::string& path, const RunModules& modules,
                         const RunProgress& progress, const nlohmann::json& fingerprint);

/// Restores a checkpoint into `modules` and returns its progress. Throws Error naming `path`
/// when the file is not an amalgam run checkpoint or was written with another config.
RunProgress load_run_checkpoint(const std::string& path, const RunModules& modules,
                                const nlohmann::json& fingerprint);

/// The same from the file's bytes (a data-parallel rank gets rank 0's); `path` names them in
/// errors.
RunProgress load_run_checkpoint_bytes(const std::string& bytes, const std::string& path,
                                      const RunModules& modules, const nlohmann::json& fingerprint);

/// `archive` (LibTorch's bytes of a checkpoint) behind the header load_run_checkpoint_bytes
/// checks before LibTorch reads anything: a magic line, the length and the CRC-32.
std::string seal_run_checkpoint(const std::string& archive);

class ProcessGroup;

/// A run's checkpoints: where they go, what they hold, and what survives a failure.
class RunCheckpointer {
 public:
  /// `path` "" writes nothing (a data-parallel rank other than 0, or a library run).
  RunCheckpointer(std::string path, RunModules modules, nlohmann::json fingerprint);
  /// Restores the run saved at the path (a data-parallel rank other than 0 gets rank 0's bytes
  /// through `group`).
  RunProgress restore(ProcessGroup* group);
  /// Writes `progress` (nothing without a path).
  void save(const RunProgress& progress);
  /// For error messages: "; the last good checkpoint, after step N, is kept in PATH", or "".
  std::string kept() const;
  /// The checkpoint's path ("" = none).
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  RunModules modules_;
  nlohmann::json fingerprint_;
  int64_t saved_step_ = -1;
};

}  // namespace amalgam

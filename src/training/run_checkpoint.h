// Run checkpoints: the whole state of an amalgamation run in one file, written atomically, so a
// crash at any instant leaves the last good one and --resume continues exactly.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "training/amalgamate.h"
#include "training/optimizer.h"

namespace amalgam {

/// Where a run stands after its last completed step.
struct RunProgress {
  int64_t epoch = 0;                ///< 0-based epoch in progress (== epochs when done)
  int64_t step = 0;                 ///< steps completed in that epoch
  int64_t global_step = 0;          ///< steps completed in the run
  EpochStats partial;               ///< loss sums of the epoch's completed steps
  int64_t seen = 0;                 ///< images of the epoch's completed steps
  std::vector<EpochStats> history;  ///< completed epochs
};

/// The modules a checkpoint holds (block and hints may be null).
struct RunModules {
  torch::nn::Module* student = nullptr;  ///< the student network
  torch::nn::Module* block = nullptr;    ///< the common feature block (cfl)
  torch::nn::Module* hints = nullptr;    ///< the hint adapters (fitnet)
  ScheduledAdam* optimizer = nullptr;    ///< the optimiser with its moments and step count
};

/// Writes modules, optimiser, LibTorch's CPU generator state, `progress` and `fingerprint` (the
/// options that must match on resume) to `path` atomically.
void save_run_checkpoint(const std::string& path, const RunModules& modules,
                         const RunProgress& progress, const nlohmann::json& fingerprint);

/// Restores a checkpoint into `modules` and returns its progress. Throws Error naming `path`
/// when the file is not an amalgam run checkpoint or was written with other options.
RunProgress load_run_checkpoint(const std::string& path, const RunModules& modules,
                                const nlohmann::json& fingerprint);

/// The same from the file's bytes (a data-parallel rank gets rank 0's); `path` names them in
/// errors.
RunProgress load_run_checkpoint_bytes(const std::string& bytes, const std::string& path,
                                      const RunModules& modules, const nlohmann::json& fingerprint);

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EpochStats, epoch, total, kd, mmd, recon, images_per_second,
                                   seconds)

}  // namespace amalgam

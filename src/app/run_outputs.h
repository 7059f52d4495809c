// What a run writes and where an export may go: checked before any work, so outputs never
// replace an input or an older run unless the user says so.
#pragma once

#include <string>
#include <vector>

namespace amalgam {

/// A streamed transfer set's file list in its run directory, read again by --resume.
inline constexpr const char* kTransferIndexFile = "transfer_index.txt";

/// Whether `dir` holds any file an amalgamate run writes.
bool holds_a_run(const std::string& dir);

/// Removes every file an amalgamate run writes from `dir` (a new run replacing an old one).
void remove_old_run(const std::string& dir);

/// Checks that `path`, named by `option`, can receive a TorchScript export: it ends in .pt, it
/// and its sidecar are none of `inputs` (model files) or their sidecars, and its folder is one
/// (created when missing). Throws Error naming `option` otherwise.
void check_export_target(const std::string& option, const std::string& path,
                         const std::vector<std::string>& inputs);

}  // namespace amalgam

// How a training command's failure reaches the user: with what to do next with its run folder.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace amalgam {

/// Runs `train`, the training part of `command` ("teach" | "amalgamate") in run folder `dir`:
/// an Error, or an allocation that failed (named with --batch-size `batch_size`), comes back as
/// an Error that says how to continue the run (amalgam COMMAND --resume DIR). Interrupted passes
/// unchanged: its message already says where the checkpoint is.
void with_resume_hints(const std::string& command, const std::string& dir, int64_t batch_size,
                       const std::function<void()>& train);

}  // namespace amalgam

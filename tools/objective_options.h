// The objective's options on the command line (amalgamate's method, weights and routing), in
// their own file so the front end stays one screenful per concern.
#pragma once

#include <CLI/CLI.hpp>

#include "method/objective.h"

namespace amalgam {

/// Declares --method, the loss weights, the common space's and the routing's options on `cmd`,
/// writing into `objective`.
void add_objective_options(CLI::App* cmd, ObjectiveConfig& objective);

}  // namespace amalgam

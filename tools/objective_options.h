// The objective's options on the command line (amalgamate's method, weights and routing), in
// their own file so the front end stays one screenful per concern. Each option belongs to a part
// of the objective config; one given to a method without that part is refused by name.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "method/objective_config.h"

namespace amalgam {

/// Every objective option as parsed, before the method says which of them apply.
struct ObjectiveOptions {
  std::string method = kDefaultMethod;  ///< --method
  ObjectiveConfig shared;               ///< --temperature, --lambda-kd
  RoutingOptions routing;               ///< the routed targets' options
  CommonSpaceOptions common_space;      ///< the common space's options
  double feature_weight = 1.0;          ///< --lambda-cf: the feature term's weight
};

/// Declares --method, the loss weights, the common space's and the routing's options on `cmd`,
/// writing into `options`.
void add_objective_options(CLI::App* cmd, ObjectiveOptions& options);

/// The config of the method `options` names, its parts from the options. Throws Error naming the
/// first option given on `cmd` whose part the method does not have.
ObjectiveConfig objective_config(const CLI::App& cmd, const ObjectiveOptions& options);

}  // namespace amalgam

// The objective's options on the command line (amalgamate's method, weights and routing), in
// their own file so the front end stays one screenful per concern. Each option belongs to a part
// of the objective config; one given to a method without that part is refused by name.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <utility>
#include <vector>

#include "method/objective_config.h"

namespace amalgam {

/// The part of the objective config an option sets: a method without that part refuses it.
enum class OptionPart { kAll, kRouting, kCommonSpace, kFeatureTerm };

/// Every objective option as parsed, before the method says which of them apply.
struct ObjectiveOptions {
  std::string method = kDefaultMethod;  ///< --method
  ObjectiveConfig shared;               ///< --temperature, --lambda-kd
  RoutingOptions routing;               ///< the routed targets' options
  CommonSpaceOptions common_space;      ///< the common space's options
  double feature_weight = 1.0;          ///< --lambda-cf: the feature term's weight
  /// Every objective option but --method with its part, as add_objective_options declared it.
  std::vector<std::pair<const CLI::Option*, OptionPart>> parts;
};

/// Declares --method, the loss weights, the common space's and the routing's options on `cmd`,
/// writing into `options`.
void add_objective_options(CLI::App* cmd, ObjectiveOptions& options);

/// The config of the method `options` names, its parts from the options (after parsing). Throws
/// Error naming the first option given whose part the method does not have.
ObjectiveConfig objective_config(const ObjectiveOptions& options);

}  // namespace amalgam

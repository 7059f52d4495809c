// Builds zoo networks from their options and (de)serialises those options.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "models/layers.h"

namespace amalgam {

/// The architecture families the zoo builds.
const std::vector<std::string>& zoo_architectures();

/// Builds a freshly initialised network; throws Error for an unknown architecture.
Network make_network(const ModelSpec& spec);

void to_json(nlohmann::json& j, const InputSpec& input);
void from_json(const nlohmann::json& j, InputSpec& input);
void to_json(nlohmann::json& j, const ModelSpec& spec);
void from_json(const nlohmann::json& j, ModelSpec& spec);

}  // namespace amalgam

// The JSON form of the training options: a run directory's config.json, and what --resume reads.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "data/augment.h"
#include "method/cfl_objective.h"
#include "training/amalgamate.h"
#include "training/optimizer.h"

namespace amalgam {

void to_json(nlohmann::json& j, const AugmentOptions& o);
void from_json(const nlohmann::json& j, AugmentOptions& o);
void to_json(nlohmann::json& j, const TrainOptions& o);
void from_json(const nlohmann::json& j, TrainOptions& o);
void to_json(nlohmann::json& j, const ObjectiveOptions& o);
void from_json(const nlohmann::json& j, ObjectiveOptions& o);
/// Every field but the in-memory student_network (a TorchScript student is named by its spec).
void to_json(nlohmann::json& j, const AmalgamateOptions& o);
void from_json(const nlohmann::json& j, AmalgamateOptions& o);

}  // namespace amalgam

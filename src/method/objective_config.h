// What configures an amalgamation objective, as pure values (config.json's "objective"): the two
// axes every method is a point of — where the soft targets come from, and which feature term
// sits beside them — each axis a part of the config that is present only when the method has it,
// and the named presets (--method) over those axes.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "routing/routing.h"

namespace amalgam {

/// Where the student's soft targets come from (a method's first axis).
enum class TargetRule {
  /// The softmax of the teachers' concatenated logits: plain KD's target, and the CFL paper's.
  kConcatenated,
  /// Each teacher imitated within its own slice of the head, weighted by its routing, and the
  /// slices' softmax mass taught which task an image belongs to (RoutingOptions).
  kRouted,
};

/// The term beside the soft targets that shapes the student's features (a method's second axis).
enum class FeatureTerm {
  kNone,         ///< soft targets only
  kCommonSpace,  ///< CFL: MMD in a learned common space + reconstruction of each teacher's map
  kHints,        ///< FitNet: the student's map regressed onto each teacher's by a 1x1 adapter
};

/// The common-space term's options (Common Feature Learning).
struct CommonSpaceOptions {
  double weight = 1.0;             ///< lambda_cf: weight of MMD + beta x reconstruction
  double beta = 1.0;               ///< weight of reconstruction inside the term
  std::vector<double> sigmas;      ///< MMD kernel bandwidths (empty: default_mmd_sigmas())
  bool use_mmd = true;             ///< include the MMD term (off: an ablation)
  bool use_reconstruction = true;  ///< include the reconstruction term (off: an ablation)
  bool fixed = false;              ///< control: align layers and extractor stay at their init
  int64_t channels = 32;           ///< h, channels of the common space
  int64_t extractor_blocks = 2;    ///< residual units in the shared extractor
  /// Share of the run over which the term's weight rises linearly from 0 to `weight`, so the
  /// soft targets shape the student first.
  double warmup = 0.0;
};

/// The hint term's options (FitNet).
struct HintOptions {
  double weight = 1.0;  ///< lambda_cf: weight of the summed per-teacher hint MSE
};

/// Everything that configures an objective. A part is present exactly when the method has it.
struct ObjectiveConfig {
  double temperature = 1.0;  ///< T of the soft targets
  double lambda_kd = 1.0;    ///< weight of the soft-target term
  /// Routed targets: which teacher answers for which image (absent: concatenated targets).
  std::optional<RoutingOptions> routing = RoutingOptions{};
  std::optional<CommonSpaceOptions> common_space;  ///< the common-space feature term
  std::optional<HintOptions> hints;                ///< the hint feature term

  /// The targets axis: routed when `routing` is present.
  TargetRule targets() const;
  /// The feature axis: which of `common_space` and `hints` is present.
  FeatureTerm features() const;
};

/// A named point on the two axes: what --method takes.
struct MethodInfo {
  const char* name;      ///< what --method takes
  const char* summary;   ///< one line for --help and tables
  TargetRule targets;    ///< its targets axis
  FeatureTerm features;  ///< its feature axis
};

/// The default method's name: routed soft targets, no feature term (docs/results.md).
inline constexpr const char* kDefaultMethod = "routed-kd";

/// Every method, in --help order.
const std::vector<MethodInfo>& methods();

/// The method called `name`; throws Error naming --method otherwise. Method names are compared
/// here and in method_of alone.
const MethodInfo& find_method(const std::string& name);

/// The method on the axes `targets` and `features`; throws Error when there is none.
const MethodInfo& find_method(TargetRule targets, FeatureTerm features);

/// The method whose axes `config`'s parts give; throws Error when no method has them.
const MethodInfo& method_of(const ObjectiveConfig& config);

/// "kd, cfl, ...": the method names, for help texts and errors.
std::string method_names();

/// The config of `method` with every one of its parts at its defaults.
ObjectiveConfig method_config(const MethodInfo& method);
/// method_config(find_method(name)).
ObjectiveConfig method_config(const std::string& name);

/// Names of the axes' values, as config.json and messages spell them.
const char* target_rule_name(TargetRule rule);
const char* feature_term_name(FeatureTerm term);

/// Throws Error naming the option for a nonsense weight or a config that is no method.
void validate(const ObjectiveConfig& config);

/// {"method", "targets", "features", "temperature", "lambda_kd", and the parts present}.
void to_json(nlohmann::json& j, const ObjectiveConfig& config);
/// Reads what to_json writes, and the flat form of amalgam before the axes were named ("method"
/// cfl = routed targets, with the common space where "lambda_cf" > 0; cfl-paper = today's cfl),
/// so older run directories and checkpoints keep loading. Throws Error for a key no part has, a
/// part its axis does not have, or a "method" its axes contradict.
void from_json(const nlohmann::json& j, ObjectiveConfig& config);

/// from_json with `where` (a file and key) before every error.
ObjectiveConfig read_objective_config(const nlohmann::json& j, const std::string& where);

}  // namespace amalgam

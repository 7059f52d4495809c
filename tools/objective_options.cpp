#include "objective_options.h"

#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "method/losses.h"

namespace amalgam {
namespace {

using Part = OptionPart;

bool has_part(const MethodInfo& method, Part part) {
  switch (part) {
    case Part::kRouting:
      return method.targets == TargetRule::kRouted;
    case Part::kCommonSpace:
      return method.features == FeatureTerm::kCommonSpace;
    case Part::kFeatureTerm:
      return method.features != FeatureTerm::kNone;
    case Part::kAll:
      return true;
  }
  return true;
}

// "has concatenated targets, no routing (methods that route: routed-kd, routed-cfl)".
std::string lacks(Part part) {
  std::string with;
  for (const auto& method : methods())
    if (has_part(method, part)) with += (with.empty() ? "" : ", ") + std::string(method.name);
  switch (part) {
    case Part::kRouting:
      return "has concatenated targets, no routing (methods that route: " + with + ")";
    case Part::kCommonSpace:
      return "has no common space (methods with one: " + with + ")";
    default:
      return "has no feature term (methods with one: " + with + ")";
  }
}

// An option whose text the library parses (its parser throws Error naming the option).
template <typename T>
CLI::Option* add_parsed_option(CLI::App* cmd, const std::string& name, T& value,
                               T (*parse)(const std::string&), const std::string& help) {
  return cmd->add_option_function<std::string>(
      name,
      [&value, parse](const std::string& text) {
        try {
          value = parse(text);
        } catch (const Error& e) {
          throw CLI::ValidationError(e.what());
        }
      },
      help);
}

void add_routing_options(CLI::App* cmd, RoutingOptions& r) {
  add_parsed_option(cmd, "--routing", r.rule, &parse_routing_rule,
                    "routed: task factor of the soft targets: gate (the student learns it from "
                    "the confidently routed images), teachers (calibrated teacher scores), "
                    "concatenated (the concatenated teacher logits' task shares, each teacher "
                    "still imitated within its slice)")
      ->default_str("gate");
  add_parsed_option(cmd, "--routing-score", r.score, &parse_routing_score,
                    "routed: a teacher's score for an image: energy|max-logit|max-prob")
      ->default_str("energy");
  cmd->add_option("--energy-temperature", r.energy_temperature,
                  "routed: temperature of the energy score, in units of each teacher's logit std")
      ->capture_default_str();
  cmd->add_option("--task-prior", r.prior,
                  "routed: expected share of transfer images per teacher, in teacher order "
                  "(default: in proportion to their class counts)")
      ->delimiter(',');
  cmd->add_flag("--estimate-task-shares", r.estimate_prior,
                "routed: with labeled validation images, fit the teachers' scores there as task "
                "likelihoods and estimate the transfer set's task shares by EM");
  cmd->add_option("--confident-share", r.confident_share,
                  "routed: share of each predicted class's images taken as confidently routed")
      ->capture_default_str();
  cmd->add_option("--lambda-task", r.lambda_task, "routed: weight of the task-routing term")
      ->capture_default_str();
  cmd->add_option("--gate-forget", r.gate_forget,
                  "routed: share of each batch's confidently routed images whose routing the "
                  "student's gate disagrees with most, left out of its task term")
      ->capture_default_str();
  add_parsed_option(cmd, "--slice-weights", r.slice_weights, &parse_slice_weights,
                    "routed: how much an image carries each teacher's soft targets: expertise "
                    "(the larger of its responsibility and its share of the concatenated "
                    "targets), responsibility, uniform (every teacher on every image)")
      ->default_str("expertise");
  cmd->add_flag("--no-gate-calibration{false}", r.calibrate_gate,
                "routed: keep the student's task gate as trained (by default its task slices are "
                "shifted after training so it routes each task the share of transfer images "
                "the teachers' routing gave it)");
  cmd->add_flag("--no-routing-check{false}", r.check,
                "routed: keep the routing rule even where, on labeled validation images, the "
                "teachers' calibrated scores route no better than their concatenated logits, or, "
                "without such images, the teachers' scores agree about which transfer images are "
                "theirs (by default the rule then becomes concatenated)");
}

void add_common_space_options(CLI::App* cmd, CommonSpaceOptions& c) {
  cmd->add_flag("--no-mmd{false}", c.use_mmd, "common space, ablation: drop the MMD term");
  cmd->add_flag("--no-reconstruction{false}", c.use_reconstruction,
                "common space, ablation: drop the reconstruction term");
  cmd->add_flag("--fixed-common-space", c.fixed,
                "common space, control: never train the align layers and extractor");
  cmd->add_option("--beta", c.beta, "common space: weight of reconstruction")
      ->capture_default_str();
  std::string defaults;
  for (double s : default_mmd_sigmas())
    defaults += (defaults.empty() ? "" : ",") + nlohmann::json(s).dump();
  cmd->add_option("--mmd-sigmas", c.sigmas, "common space: comma-separated kernel bandwidths")
      ->delimiter(',')
      ->default_str(defaults);
  cmd->add_option("--common-channels", c.channels, "common space: h, its channels")
      ->capture_default_str();
  cmd->add_option("--extractor-blocks", c.extractor_blocks,
                  "common space: residual units in the extractor")
      ->capture_default_str();
  cmd->add_option("--feature-warmup", c.warmup,
                  "common space: share of the run over which its weight rises from 0")
      ->capture_default_str();
}

// Runs `add`, recording every option it declares on `cmd` as one of `part`'s.
void declare(CLI::App* cmd, Part part, ObjectiveOptions& o, const std::function<void()>& add) {
  const size_t before = cmd->get_options().size();
  add();
  const std::vector<CLI::Option*> options = cmd->get_options();
  for (size_t i = before; i < options.size(); ++i) o.parts.emplace_back(options[i], part);
}

}  // namespace

void add_objective_options(CLI::App* cmd, ObjectiveOptions& o) {
  std::string method_help =
      "The objective: its soft targets (concatenated | routed) and its feature term (none | "
      "common-space | hints):";
  for (const auto& method : methods())
    method_help += std::string("\n  ") + method.name + ": " + method.summary;
  cmd->add_option("--method", o.method, method_help)->capture_default_str();
  declare(cmd, Part::kAll, o, [&] {
    cmd->add_option("--temperature", o.shared.temperature, "Soft-target temperature T")
        ->capture_default_str();
    cmd->add_option("--lambda-kd", o.shared.lambda_kd, "Weight of the soft-target term")
        ->capture_default_str();
  });
  declare(cmd, Part::kFeatureTerm, o, [&] {
    cmd->add_option("--lambda-cf", o.feature_weight,
                    "Weight of the feature term (the common space's or the hints')")
        ->capture_default_str();
  });
  declare(cmd, Part::kCommonSpace, o, [&] { add_common_space_options(cmd, o.common_space); });
  declare(cmd, Part::kRouting, o, [&] { add_routing_options(cmd, o.routing); });
}

ObjectiveConfig objective_config(const ObjectiveOptions& o) {
  const MethodInfo& method = find_method(o.method);
  for (const auto& [option, part] : o.parts)
    AMALGAM_CHECK(option->count() == 0 || has_part(method, part),
                  option->get_name() + ": --method " + method.name + " " + lacks(part));
  ObjectiveConfig config = method_config(method);
  config.temperature = o.shared.temperature;
  config.lambda_kd = o.shared.lambda_kd;
  if (config.routing) config.routing = o.routing;
  if (config.common_space) {
    config.common_space = o.common_space;
    config.common_space->weight = o.feature_weight;
  }
  if (config.hints) config.hints->weight = o.feature_weight;
  return config;
}

}  // namespace amalgam

#include "objective_options.h"

#include <string>

#include "core/error.h"
#include "method/losses.h"
#include "method/routing.h"

namespace amalgam {
namespace {

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
                    "cfl: task factor of the soft targets: gate (the student learns it from the "
                    "confidently routed images), teachers (calibrated teacher scores), "
                    "concatenated (the concatenated teacher logits' task shares, each teacher "
                    "still imitated within its slice), none (plain KD's concatenated target)")
      ->default_str("gate");
  add_parsed_option(cmd, "--routing-score", r.score, &parse_routing_score,
                    "cfl: a teacher's score for an image: energy|max-logit|max-prob")
      ->default_str("energy");
  cmd->add_option("--energy-temperature", r.energy_temperature,
                  "cfl: temperature of the energy score, in units of each teacher's logit std")
      ->capture_default_str();
  cmd->add_option("--task-prior", r.prior,
                  "cfl: expected share of transfer images per teacher, in teacher order "
                  "(default: in proportion to their class counts)")
      ->delimiter(',');
  cmd->add_flag("--estimate-task-shares", r.estimate_prior,
                "cfl: with labeled validation images, fit the teachers' scores there as task "
                "likelihoods and estimate the transfer set's task shares by EM");
  cmd->add_option("--confident-share", r.confident_share,
                  "cfl: share of each predicted class's images taken as confidently routed")
      ->capture_default_str();
  cmd->add_option("--lambda-task", r.lambda_task, "cfl: weight of the task-routing term")
      ->capture_default_str();
  cmd->add_option("--gate-forget", r.gate_forget,
                  "cfl: share of each batch's confidently routed images whose routing the "
                  "student's gate disagrees with most, left out of its task term")
      ->capture_default_str();
  add_parsed_option(cmd, "--slice-weights", r.slice_weights, &parse_slice_weights,
                    "cfl: how much an image carries each teacher's soft targets: expertise "
                    "(the larger of its responsibility and its share of the concatenated "
                    "targets), responsibility, uniform (every teacher on every image)")
      ->default_str("expertise");
  cmd->add_flag("--no-gate-calibration{false}", r.calibrate_gate,
                "cfl: keep the student's task gate as trained (by default its task slices are "
                "shifted after training so it routes each task the share of transfer images "
                "the teachers' routing gave it)");
  cmd->add_flag("--no-routing-check{false}", r.check,
                "cfl: keep the routing rule even where, on labeled validation images, the "
                "teachers' calibrated scores route no better than their concatenated logits (by "
                "default the rule then becomes concatenated)");
}

}  // namespace

void add_objective_options(CLI::App* cmd, ObjectiveConfig& o) {
  std::string method_help = "The objective:";
  for (const auto& method : methods())
    method_help += std::string("\n  ") + method.name + ": " + method.summary;
  cmd->add_option("--method", o.method, method_help)->capture_default_str();
  cmd->add_flag("--no-mmd{false}", o.use_mmd, "cfl ablation: drop the MMD term");
  cmd->add_flag("--no-reconstruction{false}", o.use_reconstruction,
                "cfl ablation: drop the reconstruction term");
  cmd->add_flag("--fixed-common-space", o.fixed_common_space,
                "cfl control: never train the align layers and extractor");
  cmd->add_option("--temperature", o.temperature, "Soft-target temperature T")
      ->capture_default_str();
  cmd->add_option("--lambda-kd", o.lambda_kd, "Weight of the soft-target term")
      ->capture_default_str();
  cmd->add_option("--lambda-cf", o.lambda_cf,
                  "Weight of the feature terms (default: 0 for cfl, 1 for cfl-paper and fitnet)");
  cmd->add_option("--beta", o.beta, "Weight of reconstruction")->capture_default_str();
  std::string defaults;
  for (double s : default_mmd_sigmas())
    defaults += (defaults.empty() ? "" : ",") + nlohmann::json(s).dump();
  cmd->add_option("--mmd-sigmas", o.sigmas, "Comma-separated kernel bandwidths")
      ->delimiter(',')
      ->default_str(defaults);
  cmd->add_option("--common-channels", o.common_channels, "h: channels of the common space")
      ->capture_default_str();
  cmd->add_option("--extractor-blocks", o.extractor_blocks, "Residual units in the extractor")
      ->capture_default_str();
  cmd->add_option("--feature-warmup", o.feature_warmup,
                  "cfl: share of the run over which the feature terms' weight rises from 0")
      ->capture_default_str();
  add_routing_options(cmd, o.routing);
}

}  // namespace amalgam

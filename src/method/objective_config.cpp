#include "method/objective_config.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_file.h"
#include "core/names.h"

namespace amalgam {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CommonSpaceOptions, weight, beta, sigmas, use_mmd,
                                                use_reconstruction, fixed, channels,
                                                extractor_blocks, warmup)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(HintOptions, weight)

namespace {

const NameTable<TargetRule>& target_names() {
  static const NameTable<TargetRule> names = {{TargetRule::kConcatenated, "concatenated"},
                                              {TargetRule::kRouted, "routed"}};
  return names;
}

const NameTable<FeatureTerm>& feature_names() {
  static const NameTable<FeatureTerm> names = {{FeatureTerm::kNone, "none"},
                                               {FeatureTerm::kCommonSpace, "common-space"},
                                               {FeatureTerm::kHints, "hints"}};
  return names;
}

// The flat "objective" of amalgam before the axes were named: every option one key, "method" one
// of cfl (routed targets; the common space where lambda_cf > 0, its default 0), cfl-paper (today's
// cfl), kd, fitnet; lambda_cf -1 meant the method's default. Returns the same in today's form.
nlohmann::json upgraded_flat_objective(const nlohmann::json& flat) {
  const std::string method = flat.value("method", std::string("cfl"));
  const double lambda_cf = flat.value("lambda_cf", -1.0);
  nlohmann::json out = nlohmann::json::object();
  for (const char* key : {"temperature", "lambda_kd"})
    if (flat.contains(key)) out[key] = flat.at(key);
  nlohmann::json common = nlohmann::json::object();
  for (const auto& [old_key, key] : std::vector<std::pair<const char*, const char*>>{
           {"beta", "beta"},
           {"sigmas", "sigmas"},
           {"use_mmd", "use_mmd"},
           {"use_reconstruction", "use_reconstruction"},
           {"fixed_common_space", "fixed"},
           {"common_channels", "channels"},
           {"extractor_blocks", "extractor_blocks"},
           {"feature_warmup", "warmup"}})
    if (flat.contains(old_key)) common[key] = flat.at(old_key);
  nlohmann::json routing = flat.value("routing", nlohmann::json::object());
  const bool routed = method == "cfl" && routing.value("rule", std::string()) != "none";
  bool with_common_space = false;
  if (method == "cfl") {
    with_common_space = lambda_cf > 0;
  } else if (method == "cfl-paper") {
    with_common_space = lambda_cf != 0;
  } else if (method == "fitnet") {
    out["hints"] = {{"weight", lambda_cf < 0 ? 1.0 : lambda_cf}};
  } else if (method != "kd") {
    throw Error(
        "\"method\": expected one of cfl, cfl-paper, kd, fitnet (an older amalgam's), got '" +
        method + "'");
  }
  if (with_common_space) {
    common["weight"] = lambda_cf < 0 ? 1.0 : lambda_cf;
    out["common_space"] = common;
  }
  if (routed) out["routing"] = routing;
  out["targets"] = routed ? "routed" : "concatenated";
  out["features"] = out.contains("hints")          ? "hints"
                    : out.contains("common_space") ? "common-space"
                                                   : "none";
  return out;
}

// Whether `j` is the flat form: a key only it had, or a method name only it gave a meaning.
bool is_flat_objective(const nlohmann::json& j) {
  if (j.contains("targets") || j.contains("features")) return false;
  for (const char* key : {"lambda_cf", "use_mmd", "common_channels", "feature_warmup"})
    if (j.contains(key)) return true;
  const std::string method = j.value("method", std::string("cfl"));
  return method == "cfl" || method == "cfl-paper";
}

// The part `key` of `j` read as T, its keys and types checked against T's defaults.
template <typename T>
T read_part(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) return T{};
  detail::check_like(j.at(key), nlohmann::json(T{}), "objective", key);
  return j.at(key).get<T>();
}

}  // namespace

TargetRule ObjectiveConfig::targets() const {
  return routing ? TargetRule::kRouted : TargetRule::kConcatenated;
}

FeatureTerm ObjectiveConfig::features() const {
  return hints          ? FeatureTerm::kHints
         : common_space ? FeatureTerm::kCommonSpace
                        : FeatureTerm::kNone;
}

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> table = {
      {"routed-kd",
       "the default. Routed soft targets: each teacher imitated within its own slice of the "
       "student's head on the images it is responsible for (estimated from the teachers' outputs), "
       "and the slices' softmax mass learns which task an image belongs to; no feature term",
       TargetRule::kRouted, FeatureTerm::kNone},
      {"routed-cfl",
       "routed soft targets + the common-space terms of CFL, each teacher's MMD weighted by its "
       "responsibility",
       TargetRule::kRouted, FeatureTerm::kCommonSpace},
      {"kd", "Knowledge distillation: the softmax of the teachers' concatenated logits, alone",
       TargetRule::kConcatenated, FeatureTerm::kNone},
      {"cfl",
       "Common Feature Learning as published (Ye et al., IJCAI 2019): concatenated soft targets + "
       "MMD between the student's and each teacher's features in a learned common space + "
       "reconstruction of each teacher's features from it",
       TargetRule::kConcatenated, FeatureTerm::kCommonSpace},
      {"fitnet",
       "FitNet hints: concatenated soft targets + the student's features regressed onto each "
       "teacher's through a 1x1 adapter",
       TargetRule::kConcatenated, FeatureTerm::kHints},
  };
  return table;
}

const MethodInfo& find_method(const std::string& name) {
  for (const auto& method : methods())
    if (name == method.name) return method;
  std::vector<std::string> names;
  for (const auto& method : methods()) names.emplace_back(method.name);
  throw Error("--method: expected one of " + method_names() + ", got '" + name + "'" +
              did_you_mean(name, names));
}

const MethodInfo& find_method(TargetRule targets, FeatureTerm features) {
  for (const auto& method : methods())
    if (method.targets == targets && method.features == features) return method;
  throw Error(std::string("objective: ") + target_rule_name(targets) + " targets with the " +
              feature_term_name(features) + " feature term is no method (" + method_names() + ")");
}

const MethodInfo& method_of(const ObjectiveConfig& config) {
  AMALGAM_CHECK(!(config.common_space && config.hints),
                "objective: a common-space term and hints at once is no method");
  return find_method(config.targets(), config.features());
}

std::string method_names() {
  std::string names;
  for (const auto& method : methods())
    names += (names.empty() ? "" : ", ") + std::string(method.name);
  return names;
}

ObjectiveConfig method_config(const MethodInfo& method) {
  ObjectiveConfig config;
  if (method.targets == TargetRule::kConcatenated) config.routing.reset();
  if (method.features == FeatureTerm::kCommonSpace) config.common_space = CommonSpaceOptions{};
  if (method.features == FeatureTerm::kHints) config.hints = HintOptions{};
  return config;
}

ObjectiveConfig method_config(const std::string& name) {
  return method_config(find_method(name));
}

const char* target_rule_name(TargetRule rule) {
  return choice_name(rule, target_names());
}

const char* feature_term_name(FeatureTerm term) {
  return choice_name(term, feature_names());
}

void validate(const ObjectiveConfig& o) {
  method_of(o);
  AMALGAM_CHECK(o.temperature > 0, "--temperature: must be > 0");
  AMALGAM_CHECK(o.lambda_kd >= 0, "--lambda-kd: must be >= 0");
  if (const auto& c = o.common_space) {
    AMALGAM_CHECK(c->weight >= 0, "--lambda-cf: must be >= 0");
    AMALGAM_CHECK(c->beta >= 0, "--beta: must be >= 0");
    for (double s : c->sigmas) AMALGAM_CHECK(s > 0, "--mmd-sigmas: every bandwidth must be > 0");
    AMALGAM_CHECK(c->channels > 0, "--common-channels: must be > 0");
    AMALGAM_CHECK(c->extractor_blocks > 0, "--extractor-blocks: must be > 0");
    AMALGAM_CHECK(c->warmup >= 0 && c->warmup <= 1, "--feature-warmup: must be in [0, 1]");
  }
  if (o.hints) AMALGAM_CHECK(o.hints->weight >= 0, "--lambda-cf: must be >= 0");
  if (o.routing) validate(*o.routing);
}

void to_json(nlohmann::json& j, const ObjectiveConfig& o) {
  j = {{"method", method_of(o).name},
       {"targets", target_rule_name(o.targets())},
       {"features", feature_term_name(o.features())},
       {"temperature", o.temperature},
       {"lambda_kd", o.lambda_kd}};
  if (o.routing) j["routing"] = *o.routing;
  if (o.common_space) j["common_space"] = *o.common_space;
  if (o.hints) j["hints"] = *o.hints;
}

void from_json(const nlohmann::json& given, ObjectiveConfig& o) {
  AMALGAM_CHECK(given.is_object(), "objective: must be an object, got " + json_kind(given));
  const nlohmann::json j = is_flat_objective(given) ? upgraded_flat_objective(given) : given;
  check_keys(j,
             {"method", "targets", "features", "temperature", "lambda_kd", "routing",
              "common_space", "hints"},
             "objective");
  const MethodInfo* named = j.contains("method") ? &find_method(j.at("method")) : nullptr;
  const TargetRule targets = j.contains("targets")
                                 ? parse_choice("objective \"targets\"",
                                                j.at("targets").get<std::string>(), target_names())
                             : named ? named->targets
                                     : TargetRule::kRouted;
  const FeatureTerm features =
      j.contains("features") ? parse_choice("objective \"features\"",
                                            j.at("features").get<std::string>(), feature_names())
      : named                ? named->features
                             : FeatureTerm::kNone;
  const auto refuse_part = [&](const char* key, bool has) {
    AMALGAM_CHECK(has || !j.contains(key), std::string("objective \"") + key + "\": the method (" +
                                               target_rule_name(targets) + " targets, " +
                                               feature_term_name(features) +
                                               " feature term) has no such part");
  };
  refuse_part("routing", targets == TargetRule::kRouted);
  refuse_part("common_space", features == FeatureTerm::kCommonSpace);
  refuse_part("hints", features == FeatureTerm::kHints);
  const ObjectiveConfig d;
  o.temperature = j.value("temperature", d.temperature);
  o.lambda_kd = j.value("lambda_kd", d.lambda_kd);
  o.routing.reset();
  o.common_space.reset();
  o.hints.reset();
  if (targets == TargetRule::kRouted) o.routing = read_part<RoutingOptions>(j, "routing");
  if (features == FeatureTerm::kCommonSpace)
    o.common_space = read_part<CommonSpaceOptions>(j, "common_space");
  if (features == FeatureTerm::kHints) o.hints = read_part<HintOptions>(j, "hints");
  AMALGAM_CHECK(named == nullptr || named == &method_of(o),
                std::string("objective \"method\": '") + named->name + "' contradicts its " +
                    target_rule_name(targets) + " targets and " + feature_term_name(features) +
                    " feature term");
}

ObjectiveConfig read_objective_config(const nlohmann::json& j, const std::string& where) {
  try {
    return j.get<ObjectiveConfig>();
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": objective: " + first_line(e.what()));
  }
}

}  // namespace amalgam

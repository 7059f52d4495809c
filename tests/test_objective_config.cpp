// The objective config: methods as points on two axes, parts present only where the method has
// them, JSON round trips, and the flat configs of older amalgams mapped to today's names.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "core/error.h"
#include "method/objective.h"
#include "test_util.h"
#include "training/options_json.h"

using namespace amalgam;

namespace {

using test::error_of;

ObjectiveConfig read(const std::string& text) {
  return read_objective_config(nlohmann::json::parse(text), "R/config.json");
}

}  // namespace

TEST(ObjectiveConfig, EveryMethodIsItsAxesAndRoundTrips) {
  ASSERT_EQ(methods().size(), 5u);
  EXPECT_STREQ(methods().front().name, kDefaultMethod) << "--help lists the default first";
  for (const auto& method : methods()) {
    const ObjectiveConfig config = method_config(method);
    EXPECT_EQ(config.targets(), method.targets) << method.name;
    EXPECT_EQ(config.features(), method.features) << method.name;
    EXPECT_EQ(config.routing.has_value(), method.targets == TargetRule::kRouted) << method.name;
    EXPECT_EQ(config.common_space.has_value(), method.features == FeatureTerm::kCommonSpace);
    EXPECT_EQ(config.hints.has_value(), method.features == FeatureTerm::kHints) << method.name;
    EXPECT_STREQ(method_of(config).name, method.name);
    const nlohmann::json j = config;
    EXPECT_EQ(j.at("method"), method.name);
    EXPECT_EQ(nlohmann::json(j.get<ObjectiveConfig>()), j) << method.name;
  }
  EXPECT_STREQ(method_of(ObjectiveConfig{}).name, kDefaultMethod);
  EXPECT_EQ(find_method("cfl").features, FeatureTerm::kCommonSpace) << "cfl is the paper's";
  EXPECT_EQ(find_method("cfl").targets, TargetRule::kConcatenated);
}

TEST(ObjectiveConfig, AConfigThatIsNoMethodOrAPartItsAxesLackIsRefused) {
  ObjectiveConfig both = method_config("cfl");
  both.hints = HintOptions{};
  EXPECT_NE(error_of([&] { validate(both); }).find("no method"), std::string::npos);
  ObjectiveConfig routed_hints = method_config("fitnet");
  routed_hints.routing = RoutingOptions{};
  EXPECT_NE(error_of([&] { validate(routed_hints); }).find("is no method"), std::string::npos);
  EXPECT_NE(error_of([] { find_method("cfl-paper"); }).find("--method"), std::string::npos);
  EXPECT_NE(
      error_of([] { read(R"({"targets": "concatenated", "features": "none", "routing": {}})"); })
          .find("R/config.json: objective \"routing\": the method (concatenated targets, none "
                "feature term) has no such part"),
      std::string::npos);
  EXPECT_NE(error_of([] {
              read(R"({"method": "kd", "targets": "routed", "features": "none"})");
            }).find("'kd' contradicts"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              read(R"({"targets": "routed", "features": "common-space",
                       "common_space": {"wieght": 2}})");
            }).find("unknown key \"wieght\"; did you mean weight?"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              read(R"({"targets": "routed", "features": "hint"})");
            }).find("expected none, common-space or hints"),
            std::string::npos);
}

// --routing none used to be accepted by a routed method and then routed as gate: it is refused,
// naming the method that has plain KD's target.
TEST(ObjectiveConfig, ARoutedMethodWithRoutingNoneIsRefused) {
  ObjectiveConfig routed = method_config("routed-kd");
  ASSERT_TRUE(routed.routing.has_value());
  routed.routing->rule = RoutingRule::kNone;
  const std::string message = error_of([&] { validate(routed); });
  EXPECT_NE(message.find("--routing none"), std::string::npos) << message;
  EXPECT_NE(message.find("--method kd"), std::string::npos) << message;
  for (const RoutingRule rule :
       {RoutingRule::kGate, RoutingRule::kTeachers, RoutingRule::kConcatenated}) {
    routed.routing->rule = rule;
    EXPECT_EQ(error_of([&] { validate(routed); }), "");
  }
}

TEST(ObjectiveConfig, OlderFlatConfigsKeepTheirMeaning) {
  // Written by amalgam before the axes were named: "cfl" was the routed default (with the common
  // space only where lambda_cf > 0), "cfl-paper" today's cfl.
  const ObjectiveConfig routed =
      read(R"({"method": "cfl", "lambda_cf": -1.0, "beta": 2.0, "common_channels": 16,
               "routing": {"rule": "gate", "gate_forget": 0.3}, "temperature": 2.0})");
  EXPECT_STREQ(method_of(routed).name, "routed-kd");
  EXPECT_DOUBLE_EQ(routed.routing->gate_forget, 0.3);
  EXPECT_DOUBLE_EQ(routed.temperature, 2.0);
  const ObjectiveConfig routed_cfl =
      read(R"({"method": "cfl", "lambda_cf": 0.5, "beta": 2.0, "common_channels": 16,
               "fixed_common_space": true, "feature_warmup": 0.25})");
  EXPECT_STREQ(method_of(routed_cfl).name, "routed-cfl");
  EXPECT_DOUBLE_EQ(routed_cfl.common_space->weight, 0.5);
  EXPECT_DOUBLE_EQ(routed_cfl.common_space->beta, 2.0);
  EXPECT_EQ(routed_cfl.common_space->channels, 16);
  EXPECT_TRUE(routed_cfl.common_space->fixed);
  EXPECT_DOUBLE_EQ(routed_cfl.common_space->warmup, 0.25);
  const ObjectiveConfig no_routing = read(R"({"method": "cfl", "routing": {"rule": "none"}})");
  EXPECT_STREQ(method_of(no_routing).name, "kd") << "--routing none was plain KD's target";
  const ObjectiveConfig paper = read(R"({"method": "cfl-paper", "lambda_cf": -1.0})");
  EXPECT_STREQ(method_of(paper).name, "cfl");
  EXPECT_DOUBLE_EQ(paper.common_space->weight, 1.0) << "cfl-paper's default weight";
  const ObjectiveConfig fitnet = read(R"({"method": "fitnet", "lambda_cf": 0.5, "beta": 1.0})");
  EXPECT_DOUBLE_EQ(fitnet.hints->weight, 0.5);
  EXPECT_STREQ(method_of(read(R"({"method": "kd", "lambda_cf": 0.0})")).name, "kd");
  EXPECT_STREQ(method_of(read(R"({"method": "cfl"})")).name, "routed-kd");
  // A whole older config.json's options (the AmalgamateConfig reader maps its objective too).
  const nlohmann::json options = {{"objective", {{"method", "cfl-paper"}, {"lambda_cf", 2.0}}},
                                  {"train", {{"epochs", 3}}}};
  EXPECT_DOUBLE_EQ(options.get<AmalgamateConfig>().objective.common_space->weight, 2.0);
}

// The label-free routing estimate: calibration to a prior, per-cell confident selection, and the
// student's task gate read from its head.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "method/objective.h"
#include "routing/routed_targets.h"
#include "routing/routing.h"
#include "routing/routing_check.h"
#include "teachers/teacher.h"
#include "test_util.h"

using namespace amalgam;
using test::kFloat32Unit;
using test::kFloat64Unit;

namespace {

// Two teachers of 3 classes each on n0 + n1 images: the first n0 are teacher 0's task, the rest
// teacher 1's. Each teacher is confident (a large logit) on its own images; teacher 1's logits
// carry an extra `offset`, the scale mismatch that breaks comparing raw logits.
std::vector<at::Tensor> teachers_of(int64_t n0, int64_t n1, double offset, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<at::Tensor> logits;
  for (int64_t t = 0; t < 2; ++t) {
    at::Tensor z = torch::randn({n0 + n1, 3});
    const int64_t own_count = t == 0 ? n0 : n1;
    const at::Tensor cls = torch::randint(0, 3, {own_count}, torch::kInt64);
    at::Tensor own = t == 0 ? z.slice(0, 0, n0) : z.slice(0, n0, n0 + n1);
    own.scatter_add_(1, cls.unsqueeze(1), torch::full({own_count, 1}, 4.0));
    logits.push_back(z + (t == 1 ? offset : 0.0));
  }
  return logits;
}

// n images of each task.
std::vector<at::Tensor> two_teachers(int64_t n, double offset, uint64_t seed) {
  return teachers_of(n, n, offset, seed);
}

// Task 0 for the first n0 images, task 1 for the next n1.
at::Tensor tasks_of(int64_t n0, int64_t n1) {
  return torch::cat({torch::zeros({n0}, torch::kInt64), torch::ones({n1}, torch::kInt64)});
}

double share_routed_right(const at::Tensor& task, int64_t n) {
  return task.eq(tasks_of(n, n)).to(torch::kFloat64).mean().item<double>();
}

}  // namespace

TEST(Routing, CalibrationMatchesThePriorDespiteALogitOffset) {
  const int64_t n = 2000;
  const auto logits = two_teachers(n, 6.0, 1);
  // Raw scores send almost everything to the offset teacher.
  const at::Tensor raw = routing_scores(logits, RoutingScore::kMaxLogit, 1.0).argmax(1);
  EXPECT_LT(share_routed_right(raw, n), 0.6);
  for (RoutingScore score : {RoutingScore::kEnergy, RoutingScore::kMaxLogit}) {
    RoutingOptions options;
    options.score = score;
    const TaskRouting r = route_by_teachers(logits, options);
    const double share0 = r.task.eq(0).to(torch::kFloat64).mean().item<double>();
    EXPECT_NEAR(share0, 0.5, 0.05);  // argmax shares follow the calibrated mean only roughly
    EXPECT_GT(share_routed_right(r.task, n), 0.9);
    // Float64 shares summing to 1 (4 roundings), each rounded to float32 (u of itself); the mean
    // of the 2n rows in float64.
    EXPECT_NEAR(r.responsibility.to(torch::kFloat64).sum(1).mean().item<double>(), 1.0,
                kFloat32Unit + (2 * n + 4) * kFloat64Unit);
    EXPECT_LT(r.bias[1], r.bias[0]) << "the offset teacher's scores must be lowered";
  }
}

// A streamed transfer set is routed batch by batch from the estimate kept by fit_routing: on the
// images the estimate saw, each batch gets exactly the rows the estimate gave (the same float64
// operations per row); on images it did not see, tasks still follow the teachers.
TEST(Routing, AFittedRoutingRoutesBatchesAsTheEstimateDid) {
  const int64_t n = 600;
  const auto logits = two_teachers(n, 3.0, 4);
  for (RoutingScore score : {RoutingScore::kEnergy, RoutingScore::kMaxProb}) {
    RoutingOptions options;
    options.score = score;
    const TaskRouting whole = route_by_teachers(logits, options);
    const FittedRouting fitted = fit_routing(logits, whole, options);
    for (int64_t begin = 0; begin < 2 * n; begin += 64) {
      std::vector<at::Tensor> batch;
      for (const auto& l : logits) batch.push_back(l.slice(0, begin, begin + 64));
      const TaskRouting routed = apply_routing(batch, fitted, options);
      const int64_t end = std::min<int64_t>(begin + 64, 2 * n);
      EXPECT_TRUE(torch::equal(routed.responsibility, whole.responsibility.slice(0, begin, end)));
      EXPECT_TRUE(torch::equal(routed.task, whole.task.slice(0, begin, end)));
      EXPECT_TRUE(torch::equal(routed.confident, whole.confident.slice(0, begin, end)));
    }
    // Fitted on every other image, applied to the rest.
    std::vector<at::Tensor> seen, unseen;
    for (const auto& l : logits) {
      seen.push_back(l.slice(0, 0, 2 * n, 2));
      unseen.push_back(l.slice(0, 1, 2 * n, 2));
    }
    const FittedRouting half = fit_routing(seen, route_by_teachers(seen, options), options);
    const TaskRouting other = apply_routing(unseen, half, options);
    const at::Tensor truth = torch::arange(1, 2 * n, 2).ge(n).to(torch::kInt64);
    EXPECT_GT(other.task.eq(truth).to(torch::kFloat64).mean().item<double>(), 0.9);
    const double confident = other.confident.to(torch::kFloat64).mean().item<double>();
    EXPECT_GT(confident, 0.2);
    EXPECT_LT(confident, 0.9);
  }
}

// Teachers of many classes estimated on a small sample: most (task, class) cells hold fewer than
// kMinCellSample sampled images and take their task's margin, so unseen images of every class can
// still be confident (with each cell's own margin, a cell the sample missed never would be).
TEST(Routing, CellsTheSampleBarelyHoldsTakeTheirTasksMargin) {
  torch::manual_seed(5);
  const int64_t classes = 100, n = 1100;  // 100 sampled images, 1,000 unseen
  std::vector<at::Tensor> logits;
  for (int64_t t = 0; t < 2; ++t) {
    at::Tensor z = torch::randn({n, classes});
    const at::Tensor own = torch::arange(n).remainder(2).eq(t);
    z.scatter_add_(1, torch::randint(0, classes, {n, 1}, torch::kInt64),
                   own.to(torch::kFloat32).unsqueeze(1) * 6.0);
    logits.push_back(z);
  }
  std::vector<at::Tensor> seen, unseen;
  for (const auto& l : logits) {
    seen.push_back(l.slice(0, 0, 100));
    unseen.push_back(l.slice(0, 100, n));
  }
  RoutingOptions options;
  const FittedRouting fitted = fit_routing(seen, route_by_teachers(seen, options), options);
  const TaskRouting routed = apply_routing(unseen, fitted, options);
  const double confident = routed.confident.to(torch::kFloat64).mean().item<double>();
  // confident_share 0.4 of each task by its margin quantile: 0.431 here. With each cell's own
  // margin, the 60% of cells the sample misses would add none: at most 0.4 x 0.4 + the rest.
  EXPECT_GT(confident, 0.3) << "cells missing from the sample must not be left unconfident";
  EXPECT_LT(confident, 0.6);
}

TEST(Routing, AGivenPriorMovesTheShares) {
  const int64_t n = 2000;
  const auto logits = two_teachers(n, 0.0, 2);
  RoutingOptions options;
  options.prior = {3, 1};
  const TaskRouting r = route_by_teachers(logits, options);
  EXPECT_EQ(r.prior[0], 0.75);  // 3 / (3 + 1)
  // The mean responsibility is matched: the calibration stops on log-share errors < 1e-6 (the
  // step it still applies mixes them, no larger); float32 responsibilities add u of themselves.
  EXPECT_NEAR(r.responsibility.select(1, 0).to(torch::kFloat64).mean().item<double>(), 0.75,
              0.75 * (1e-6 + kFloat32Unit));
  EXPECT_GT(r.task.eq(0).to(torch::kFloat64).mean().item<double>(), 0.6);
}

TEST(Routing, ValidationOffsetsLetEmEstimateTheTransferSetsTaskShares) {
  // Validation holds the tasks alike; the transfer set holds a quarter of task 0, as the
  // cross-domain set-up holds a quarter digits. Teacher 1's logits carry an offset throughout.
  // The energy's temperature is fixed on validation: scaled by each data set's own logit std it
  // would follow the task mix (teacher 0's std falls by a fifth here) and EM would drift to 0.
  const auto val = teachers_of(1000, 1000, 3.0, 5);
  const auto transfer = teachers_of(500, 1500, 3.0, 6);
  ScoreCalibration fit;
  fit.temperatures = energy_temperatures(val, 2.5);
  fit_score_calibration(routing_scores(val, RoutingScore::kEnergy, 2.5, fit.temperatures),
                        tasks_of(1000, 1000), fit);
  ASSERT_TRUE(fit.fitted());
  const at::Tensor scores = routing_scores(transfer, RoutingScore::kEnergy, 2.5, fit.temperatures);
  const std::vector<double> estimate = estimate_task_prior(scores, fit);
  EXPECT_NEAR(estimate[0], 0.25, 0.02);  // an estimate from 2000 images (s.e. ~0.01), not a float
  EXPECT_NEAR(estimate[0] + estimate[1], 1.0, 1e-9);  // float64 shares: 1 up to ~1e-13
  RoutingOptions options;
  options.likelihood = fit;
  const TaskRouting estimated = route_by_teachers(transfer, options);
  EXPECT_DOUBLE_EQ(estimated.prior[0], estimate[0]);
  const TaskRouting by_classes = route_by_teachers(transfer, RoutingOptions{});
  EXPECT_DOUBLE_EQ(by_classes.prior[0], 0.5);
  const auto right = [&](const TaskRouting& r) {
    return r.task.eq(tasks_of(500, 1500)).to(torch::kFloat64).mean().item<double>();
  };
  EXPECT_GT(right(estimated), right(by_classes) + 0.02);
  // A prior the user gives wins over the estimate.
  options.prior = {1, 1};
  EXPECT_DOUBLE_EQ(route_by_teachers(transfer, options).prior[0], 0.5);
  // No task is estimated away: one teacher's images only.
  const std::vector<double> lone = estimate_task_prior(
      routing_scores(teachers_of(0, 500, 3.0, 7), RoutingScore::kEnergy, 2.5, fit.temperatures),
      fit);
  EXPECT_GE(lone[0], kMinEstimatedShare - 1e-12);  // the floor, up to a float64 rounding
  ScoreCalibration one_offset = fit;
  one_offset.offsets = {0.0};
  EXPECT_THROW(estimate_task_prior(scores, one_offset), Error);
}

TEST(RoutingCheck, HandsItsOffsetsToTheRoutingUnlessAPriorIsGivenOrItFellBack) {
  RoutingCheck check;
  check.checked = true;
  check.likelihood.offsets = {0.5, -0.5};
  std::optional<RoutingOptions> kept = RoutingOptions{};
  EXPECT_TRUE(kept->label_free_check);
  apply_routing_check(check, kept);
  EXPECT_FALSE(kept->label_free_check) << "labels decided: the label-free check must not overrule";
  EXPECT_EQ(kept->likelihood.offsets, check.likelihood.offsets);
  EXPECT_EQ(kept->rule, RoutingRule::kGate);
  std::optional<RoutingOptions> given = RoutingOptions{};
  given->prior = {1, 3};
  apply_routing_check(check, given);
  EXPECT_FALSE(given->likelihood.fitted());
  check.fall_back = true;
  std::optional<RoutingOptions> fell = RoutingOptions{};
  apply_routing_check(check, fell);
  EXPECT_EQ(fell->rule, RoutingRule::kConcatenated);
  EXPECT_FALSE(fell->likelihood.fitted());
  std::optional<RoutingOptions> none;  // concatenated targets: nothing to route, nothing set
  apply_routing_check(check, none);
  EXPECT_FALSE(none.has_value());
}

// Experts disagree about which images are theirs; scores driven by something every image carries
// (here a per-image factor added to all of both teachers' logits, like contrast) agree.
TEST(Routing, ScoreAgreementSeparatesExpertsFromAFactorTheImagesShare) {
  const int64_t n = 1500;
  const auto experts = two_teachers(n, 0.0, 7);
  const double expert_agreement =
      score_agreement(routing_scores(experts, RoutingScore::kEnergy, 2.5));
  EXPECT_LT(expert_agreement, -0.3);
  const at::Tensor shared = 3.0 * torch::randn({2 * n, 1});
  const std::vector<at::Tensor> generic = {experts[0] * 0.2 + shared, experts[1] * 0.2 + shared};
  const double generic_agreement =
      score_agreement(routing_scores(generic, RoutingScore::kEnergy, 2.5));
  EXPECT_GT(generic_agreement, 0.5);
  EXPECT_DOUBLE_EQ(score_agreement(torch::randn({10, 1})), 0.0) << "one teacher agrees with none";
  RoutingOptions options;
  EXPECT_FALSE(falls_back_without_labels(options, expert_agreement));
  EXPECT_TRUE(falls_back_without_labels(options, generic_agreement));
  options.check = false;  // --no-routing-check keeps the routing
  EXPECT_FALSE(falls_back_without_labels(options, generic_agreement));
  options.check = true;
  options.label_free_check = false;  // a labeled check decided
  EXPECT_FALSE(falls_back_without_labels(options, generic_agreement));
  // The routed targets take the concatenated rule when the check falls back: their gate then
  // follows the concatenated logits and is not calibrated to the routed shares.
  const std::vector<TaskSpec> tasks = {TaskSpec{"a", {0, 1, 2}, {}}, TaskSpec{"b", {3, 4, 5}, {}}};
  const RoutedTargets kept(experts, RoutingOptions{}, tasks, 4.0);
  EXPECT_FALSE(kept.fell_back());
  EXPECT_EQ(kept.gate_shares().size(), 2u);
  EXPECT_EQ(kept.summary()["rule"], "gate");
  const RoutedTargets fell(generic, RoutingOptions{}, tasks, 4.0);
  EXPECT_TRUE(fell.fell_back());
  EXPECT_TRUE(fell.gate_shares().empty());
  EXPECT_EQ(fell.summary()["rule"], "concatenated");
  EXPECT_EQ(fell.summary()["agreement"].get<double>(), generic_agreement);  // the same float64 sums
}

TEST(Routing, ConfidentImagesAreBalancedPerPredictedClassAndMoreOftenRight) {
  const int64_t n = 3000;
  const auto logits = two_teachers(n, 0.0, 3);
  RoutingOptions options;
  options.confident_share = 0.4;
  const TaskRouting r = route_by_teachers(logits, options);
  const double kept = r.confident.to(torch::kFloat64).mean().item<double>();
  // Every predicted (task, class) cell keeps 40% of its images, rounded up: one image more at most.
  EXPECT_GE(kept, 0.4);
  EXPECT_LE(kept, 0.4 + 6.0 / (2 * n));
  for (int64_t t = 0; t < 2; ++t)
    for (int64_t c = 0; c < 3; ++c) {
      const at::Tensor cell = r.task.eq(t).logical_and(logits[t].argmax(1).eq(c));
      const double in_cell = cell.sum().item<double>();
      const double confident = cell.logical_and(r.confident).sum().item<double>();
      EXPECT_GE(confident / in_cell, 0.4) << "task " << t << " class " << c;
      EXPECT_LE(confident / in_cell, 0.4 + 1 / in_cell) << "task " << t << " class " << c;
    }
  const at::Tensor truth =
      torch::cat({torch::zeros({n}, torch::kInt64), torch::ones({n}, torch::kInt64)});
  const at::Tensor right = r.task.eq(truth);
  const double all = right.to(torch::kFloat64).mean().item<double>();
  const double among_confident =
      right.masked_select(r.confident).to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(among_confident, all);
}

TEST(Routing, SliceProbabilitiesAreTheSoftmaxMassOfEachTask) {
  const at::Tensor head = torch::tensor({{0.0, 0.0, 0.0, 0.0, 0.0}, {10.0, 0.0, 0.0, 0.0, 0.0}});
  const at::Tensor p = slice_probabilities(head, {2, 3});
  // log 5, log k and exp within 1 ulp (2u) and one add, on log-values <= 1.61: <= 8u of p.
  EXPECT_NEAR(p[0][0].item<double>(), 0.4, 8 * kFloat32Unit * 0.4);
  EXPECT_NEAR(p[0][1].item<double>(), 0.6, 8 * kFloat32Unit * 0.6);
  EXPECT_GT(p[1][0].item<double>(), 0.99);
  EXPECT_TRUE(torch::equal(slice_log_probabilities(head, {2, 3}).exp(), p));  // the same operations
}

TEST(Routing, RoutedUnionPredictionPicksTheResponsibleTeachersClass) {
  const std::vector<at::Tensor> logits = {torch::tensor({{5.0, 0.0}, {5.0, 0.0}}),
                                          torch::tensor({{0.0, 0.0, 4.0}, {0.0, 0.0, 4.0}})};
  const at::Tensor task_probs = torch::tensor({{0.9f, 0.1f}, {0.1f, 0.9f}});
  const at::Tensor pred = routed_union_prediction(logits, task_probs);
  EXPECT_EQ(pred[0].item<int64_t>(), 0);
  EXPECT_EQ(pred[1].item<int64_t>(), 4);
}

TEST(Routing, OptionsRoundTripThroughJsonAndBadValuesAreNamed) {
  RoutingOptions o;
  o.rule = RoutingRule::kTeachers;
  o.score = RoutingScore::kMaxLogit;
  o.prior = {1, 2};
  o.confident_share = 0.3;
  o.gate_forget = 0.1;
  o.slice_weights = SliceWeights::kUniform;
  o.calibrate_gate = false;
  o.check = false;
  o.label_free_check = false;
  o.estimate_prior = true;
  o.likelihood = {{2.0, 3.0}, 0.5, {0.25, -1.5}};
  const RoutingOptions back = nlohmann::json(o).get<RoutingOptions>();
  EXPECT_EQ(back.rule, o.rule);
  EXPECT_EQ(back.score, o.score);
  EXPECT_EQ(back.prior, o.prior);
  EXPECT_DOUBLE_EQ(back.confident_share, 0.3);
  EXPECT_DOUBLE_EQ(back.gate_forget, 0.1);
  EXPECT_EQ(back.slice_weights, SliceWeights::kUniform);
  EXPECT_FALSE(back.calibrate_gate);
  EXPECT_FALSE(back.check);
  EXPECT_FALSE(back.label_free_check);
  EXPECT_TRUE(RoutingOptions{}.label_free_check);
  // A run recorded before the check existed kept its rule; resumed, it must keep it.
  EXPECT_FALSE(nlohmann::json::object().get<RoutingOptions>().label_free_check);
  EXPECT_TRUE(back.estimate_prior);
  EXPECT_FALSE(RoutingOptions{}.estimate_prior);
  EXPECT_EQ(back.likelihood.temperatures, o.likelihood.temperatures);
  EXPECT_DOUBLE_EQ(back.likelihood.scale, 0.5);
  EXPECT_EQ(back.likelihood.offsets, o.likelihood.offsets);
  EXPECT_THROW(parse_routing_rule("oracle"), Error);
  EXPECT_THROW(parse_routing_score("entropy"), Error);
  // validate(bad) throws an Error naming `option`.
  const auto expect_refused = [](const RoutingOptions& bad, const std::string& option) {
    try {
      validate(bad);
      ADD_FAILURE() << option << ": bad value accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(option), std::string::npos) << e.what();
    }
  };
  o.confident_share = 0;
  expect_refused(o, "--confident-share");
  o.confident_share = 0.4;
  o.gate_forget = 1.0;
  expect_refused(o, "--gate-forget");
  o.gate_forget = 0.2;
  o.prior = {1, 1, 1};
  EXPECT_THROW(route_by_teachers(two_teachers(10, 0, 4), o), Error);
}

TEST(Routing, TaskSharesCountEveryTaskIncludingAnEmptyOne) {
  const std::vector<double> shares = task_shares(torch::tensor({0, 2, 2, 0, 2}), 3);
  ASSERT_EQ(shares.size(), 3u);
  EXPECT_DOUBLE_EQ(shares[0], 0.4);
  EXPECT_DOUBLE_EQ(shares[1], 0.0);
  EXPECT_DOUBLE_EQ(shares[2], 0.6);
}

TEST(Names, AnUnknownChoiceListsTheChoicesAndTheOneMeant) {
  EXPECT_EQ(parse_slice_weights("uniform"), SliceWeights::kUniform);
  try {
    parse_slice_weights("expertize");
    FAIL() << "expertize accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--slice-weights: expected expertise, responsibility or uniform, got 'expertize'; "
              "did you mean expertise?");
  }
}

TEST(DegenerateTeacher, OneClassTakingMostPredictionsIsNamed) {
  Teacher teacher;
  teacher.path = "b.pt";
  teacher.task.name = "b";
  teacher.task.classes = {0, 1, 2, 3};
  teacher.task.class_names = {"bird", "cat", "dog", "fish"};
  torch::manual_seed(7);
  at::Tensor spread = torch::randn({400, 4});
  EXPECT_EQ(degenerate_teacher_warning(teacher, spread), "");
  at::Tensor collapsed = torch::randn({400, 4});
  collapsed.select(1, 2).add_(5.0);  // what a wrong normalisation typically does
  const std::string warning = degenerate_teacher_warning(teacher, collapsed);
  EXPECT_NE(warning.find("b.pt"), std::string::npos) << warning;
  EXPECT_NE(warning.find("dog"), std::string::npos) << warning;
  EXPECT_NE(warning.find("normalisation"), std::string::npos) << warning;
  const std::string flat = degenerate_teacher_warning(teacher, 0.01 * torch::randn({400, 4}));
  EXPECT_NE(flat.find("nearly uniform"), std::string::npos) << flat;
  EXPECT_NE(flat.find("normalisation"), std::string::npos) << flat;
}

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>

#include "core/error.h"
#include "method/common_feature_block.h"
#include "method/hint_adapters.h"
#include "method/objective.h"
#include "test_util.h"

using namespace amalgam;
using amalgam::test::kFloat32Unit;

namespace {

CommonFeatureBlockOptions mixed_shapes() {
  CommonFeatureBlockOptions o;
  // Teachers differ in channels and in spatial size (larger, smaller, equal to the student's).
  o.teacher_shapes = {{64, 7, 7}, {48, 4, 4}, {32, 14, 14}};
  o.student_shape = {40, 7, 7};
  o.common_channels = 16;
  return o;
}

// The objective of `method` for mixed_shapes() teachers and student, `change` applied to its
// config.
Objective objective_for(const std::string& method,
                        const std::function<void(ObjectiveConfig&)>& change = {}) {
  const auto shapes = mixed_shapes();
  ObjectiveSetup setup;
  setup.config = method_config(method);
  if (setup.config.common_space) setup.config.common_space->channels = shapes.common_channels;
  if (change) change(setup.config);
  setup.teacher_shapes = shapes.teacher_shapes;
  setup.student_shape = shapes.student_shape;
  return make_objective(setup);
}

}  // namespace

TEST(CommonFeatureBlock, ShapesForHeterogeneousTeachers) {
  torch::manual_seed(0);
  CommonFeatureBlock block(mixed_shapes());
  const int64_t b = 5;
  EXPECT_EQ(block->student_common(torch::randn({b, 40, 7, 7})).sizes(),
            (std::vector<int64_t>{b, 16, 7, 7}));
  for (size_t i = 0; i < block->num_teachers(); ++i) {
    const auto& shape = block->options().teacher_shapes[i];
    const auto f = torch::randn({b, shape[0], shape[1], shape[2]});
    const auto h = block->teacher_common(i, f);
    EXPECT_EQ(h.sizes(), (std::vector<int64_t>{b, 16, 7, 7})) << "teacher " << i;
    EXPECT_EQ(block->reconstruct(i, h).sizes(), f.sizes()) << "teacher " << i;
  }
}

TEST(CommonFeatureBlock, SmallTeacherMapsAreAlignedBeforeUpsampling) {
  // A 1x1 teacher map (a torchvision network at 32x32) upsampled is constant, so aligning it
  // first (per pixel) gives exactly what aligning the upsampled map gives, at 1/49 of the cost.
  torch::manual_seed(3);
  CommonFeatureBlockOptions o;
  o.teacher_shapes = {{96, 1, 1}};
  o.student_shape = {40, 7, 7};
  o.common_channels = 8;
  CommonFeatureBlock block(o);
  const auto f = torch::randn({3, 96, 1, 1});
  const auto children = block->named_children();
  auto* align =
      children["teacher_align"]->as<torch::nn::ModuleList>()->ptr(0)->as<torch::nn::Sequential>();
  auto* extractor = children["extractor"]->as<torch::nn::Sequential>();
  const auto aligned = resize_feature_map(align->forward(f), 7, 7);
  // The block aligns, then upsamples: the same operations as here, bitwise.
  EXPECT_TRUE(torch::equal(block->teacher_common(0, f), extractor->forward(aligned)));
  // Upsampling first: w.f + b (97 terms) in another order, <= 97u of |w|.|f| + |b|, and a 1x1
  // map's bilinear weights (2 levels of 2 rounded weights summing to 1), <= 8u on each path.
  const auto* conv = align->ptr(0)->as<torch::nn::Conv2d>();
  const auto terms = torch::conv2d(f.abs(), conv->weight.abs(), conv->bias.abs());
  const auto bound = (97 + 2 * 8) * kFloat32Unit * terms;
  const auto upsampled_first = align->forward(resize_feature_map(f, 7, 7));
  EXPECT_TRUE((aligned - upsampled_first).abs().le(bound).all().item<bool>());
  EXPECT_EQ(block->reconstruct(0, block->teacher_common(0, f)).sizes(), f.sizes());
}

TEST(CommonFeatureBlock, CflLossTrainsEveryPart) {
  torch::manual_seed(1);
  Objective objective = objective_for("cfl");
  CommonFeatureBlockImpl* block = objective->common_space();
  ASSERT_NE(block, nullptr);
  auto student_features = torch::randn({6, 40, 7, 7}, torch::requires_grad());
  auto student_logits = torch::randn({6, 9}, torch::requires_grad());
  std::vector<ModelOutput> teachers;
  const std::vector<int64_t> classes = {3, 4, 2};
  for (size_t i = 0; i < 3; ++i) {
    const auto& s = block->options().teacher_shapes[i];
    teachers.push_back({torch::randn({6, s[0], s[1], s[2]}), torch::randn({6, classes[i]})});
  }
  const LossTerms terms = objective->loss({student_features, student_logits}, teachers, {});
  EXPECT_GT(terms.part("mmd").item<double>(), 0.0);
  EXPECT_GT(terms.part("recon").item<double>(), 0.0);
  terms.total.backward();
  EXPECT_TRUE(torch::isfinite(student_features.grad()).all().item<bool>());
  EXPECT_GT(student_features.grad().abs().sum().item<double>(), 0.0);
  for (const auto& p : objective->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
  }
}

TEST(CflObjective, WithoutMmdTheCommonSpaceSendsNoGradientToTheStudent) {
  // Reconstruction only involves teacher features, so with the MMD term off the student learns
  // from the soft targets alone: the "CFL without MMD" ablation trains the same student as KD.
  torch::manual_seed(3);
  Objective objective =
      objective_for("cfl", [](ObjectiveConfig& c) { c.common_space->use_mmd = false; });
  auto student_features = torch::randn({6, 40, 7, 7}, torch::requires_grad());
  std::vector<ModelOutput> teachers;
  for (const auto& s : mixed_shapes().teacher_shapes)
    teachers.push_back({torch::randn({6, s[0], s[1], s[2]}), torch::randn({6, 3})});
  const LossTerms terms = objective->loss({student_features, torch::randn({6, 9})}, teachers, {});
  EXPECT_EQ(terms.part("mmd").item<double>(), 0.0);
  EXPECT_GT(terms.part("recon").item<double>(), 0.0);
  terms.total.backward();
  EXPECT_FALSE(student_features.grad().defined() &&
               student_features.grad().abs().sum().item<double>() > 0);
}

TEST(CflObjective, FitNetHintsReachStudentAndAdapters) {
  torch::manual_seed(4);
  Objective objective = objective_for("fitnet");
  auto student_features = torch::randn({5, 40, 7, 7}, torch::requires_grad());
  std::vector<ModelOutput> teachers;
  for (const auto& s : mixed_shapes().teacher_shapes)
    teachers.push_back({torch::randn({5, s[0], s[1], s[2]}), torch::randn({5, 3})});
  const LossTerms terms = objective->loss({student_features, torch::randn({5, 9})}, teachers, {});
  EXPECT_GT(terms.part("hint").item<double>(), 0.0);
  EXPECT_EQ(terms.values().terms().size(), 3u) << "total, kd, hint";
  terms.total.backward();
  EXPECT_GT(student_features.grad().abs().sum().item<double>(), 0.0);
  ASSERT_FALSE(objective->parameters().empty());
  for (const auto& p : objective->parameters()) EXPECT_GT(p.grad().abs().sum().item<double>(), 0.0);
  ASSERT_EQ(objective->parameter_groups().size(), 1u);
}

TEST(CflObjective, KdIsTheSoftTargetTermAlone) {
  torch::manual_seed(2);
  const auto logits = torch::randn({4, 5});
  std::vector<ModelOutput> teachers = {{torch::randn({4, 8, 2, 2}), torch::randn({4, 2})},
                                       {torch::randn({4, 8, 2, 2}), torch::randn({4, 3})}};
  ObjectiveSetup setup;
  setup.config = method_config("kd");
  setup.config.temperature = 2.0;
  Objective objective = make_objective(setup);
  const LossTerms terms = objective->loss({torch::randn({4, 8, 2, 2}), logits}, teachers, {});
  const auto target =
      torch::softmax(torch::cat({teachers[0].logits, teachers[1].logits}, 1) / 2.0, 1);
  const double expected =
      4.0 * -(target * torch::log_softmax(logits / 2.0, 1)).sum(1).mean().item<double>();
  // soft_target_loss's float32 operations on the same shapes; x T^2 = 4 and x lambda_kd = 1 exact.
  EXPECT_EQ(terms.total.item<double>(), expected);
  EXPECT_FALSE(terms.part("mmd").defined()) << "kd has no common-space term";
  EXPECT_TRUE(objective->parameters().empty());
}

TEST(Objective, MethodsAreParsedInOnePlace) {
  EXPECT_STREQ(find_method("kd").name, "kd");
  EXPECT_STREQ(find_method("fitnet").name, "fitnet");
  try {
    find_method("magic");
    FAIL() << "an unknown method must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--method"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cfl"), std::string::npos) << e.what();
  }
}

namespace {

// The cfl objective's loss terms for routed teachers whose logits on the 8 transfer images are
// `logits`, with `weights` as the slice weighting and `rule` as the task factor.
// `forget` is the gate's forget rate and `progress` the share of the run done.
LossTerms routed_terms(const std::vector<at::Tensor>& logits, const at::Tensor& student_logits,
                       SliceWeights weights, RoutingRule rule = RoutingRule::kGate,
                       double forget = 0.0, double progress = 0.0) {
  ObjectiveSetup setup;
  setup.config = method_config("routed-kd");
  setup.config.routing->slice_weights = weights;
  setup.config.routing->rule = rule;
  setup.config.routing->gate_forget = forget;
  for (const auto& z : logits) {
    TaskSpec task;
    for (int64_t c = 0; c < z.size(1); ++c) task.classes.push_back(c);
    setup.head.tasks.push_back(task);
  }
  setup.transfer_logits = [&] { return logits; };
  Objective objective = make_objective(setup);
  std::vector<ModelOutput> teachers;
  for (const auto& z : logits) teachers.push_back({torch::randn({8, 4, 2, 2}), z});
  BatchContext batch;
  batch.indices = torch::arange(8, torch::kInt64);
  batch.progress = progress;
  return objective->loss({torch::randn({8, 4, 2, 2}), student_logits}, teachers, batch);
}

double routed_kd_term(const std::vector<at::Tensor>& logits, const at::Tensor& student_logits,
                      SliceWeights weights) {
  return routed_terms(logits, student_logits, weights).part("kd").item<double>();
}

}  // namespace

TEST(CflObjective, ExpertiseWeightsImitateATeacherWhereKdOrTheRoutingWould) {
  // Teacher 1's logits sit 6 above teacher 0's, so it takes nearly all of plain KD's soft targets,
  // while the calibration to a 50/50 prior hands teacher 0 about half the responsibility: the
  // expertise weight is the larger of the two for each teacher and image.
  torch::manual_seed(7);
  const std::vector<at::Tensor> logits = {torch::randn({8, 2}), torch::randn({8, 3}) + 6.0};
  const at::Tensor student = torch::randn({8, 5});
  RoutingOptions options;
  const TaskRouting routing = route_by_teachers(logits, options);
  const at::Tensor kd_share = slice_probabilities(torch::cat(logits, 1), {2, 3});
  const auto expected = [&](const at::Tensor& w) {
    double sum = 0;
    int64_t offset = 0;
    for (int64_t i = 0; i < 2; ++i) {
      const int64_t k = logits[i].size(1);
      const at::Tensor per_image = -(torch::softmax(logits[i], 1) *
                                     torch::log_softmax(student.slice(1, offset, offset + k), 1))
                                        .sum(1);
      sum += (w.select(1, i) * per_image).mean().item<double>();
      offset += k;
    }
    return sum;
  };
  const double responsibility = routed_kd_term(logits, student, SliceWeights::kResponsibility);
  const double expertise = routed_kd_term(logits, student, SliceWeights::kExpertise);
  // The same float32 term per teacher; the objective adds the 2 in float32 (<= u of the sum),
  // expected() in double (exact).
  const auto near = [](double got, double want) {
    return std::abs(got - want) <= kFloat32Unit * want;
  };
  EXPECT_PRED2(near, responsibility, expected(routing.responsibility));
  EXPECT_PRED2(near, expertise, expected(torch::max(routing.responsibility, kd_share)));
  EXPECT_GT(expertise, responsibility + 0.1) << "teacher 1 keeps KD's weight on every image";
  const double uniform = routed_kd_term(logits, student, SliceWeights::kUniform);
  EXPECT_PRED2(near, uniform, expected(torch::ones({8, 2}))) << "full weight, not averaged";
  EXPECT_THROW(parse_slice_weights("kd"), Error);
}

TEST(CflObjective, TheConcatenatedRuleTeachesTheGatePlainKdsTaskShares) {
  // The fallback of the routing check: the student's slice masses learn the concatenated logits'
  // task shares on every image (with the within-slice terms, plain KD's union target), while each
  // teacher is still imitated within its slice with the expertise weights.
  torch::manual_seed(11);
  const std::vector<at::Tensor> logits = {torch::randn({8, 2}), torch::randn({8, 3}) + 2.0};
  const at::Tensor student = torch::randn({8, 5});
  const LossTerms terms =
      routed_terms(logits, student, SliceWeights::kExpertise, RoutingRule::kConcatenated);
  const at::Tensor kd_share = slice_probabilities(torch::cat(logits, 1), {2, 3});
  const double expected =
      -(kd_share * slice_log_probabilities(student, {2, 3})).sum(1).mean().item<double>();
  // The objective's float32 operations on the same shapes, and the kd term's under both rules.
  EXPECT_EQ(terms.part("task").item<double>(), expected);
  EXPECT_EQ(terms.part("kd").item<double>(),
            routed_kd_term(logits, student, SliceWeights::kExpertise));
  EXPECT_EQ(parse_routing_rule("concatenated"), RoutingRule::kConcatenated);
}

TEST(CflObjective, TheGateLeavesOutTheConfidentImagesItDisagreesWithMostOnceRamped) {
  // --gate-forget: the task term sums the gate's loss over the confidently routed images minus,
  // within each routed task, the given share of them with the largest loss; the share rises from
  // 0 over the first fifth of the run.
  torch::manual_seed(5);
  // Images 0-3 clearly task 0 (classes 0,1,0,1), 4-7 clearly task 1 (classes 0,1,2,0), so both
  // tasks hold several confident images.
  at::Tensor first = torch::randn({8, 2});
  at::Tensor second = torch::randn({8, 3});
  for (int64_t i = 0; i < 4; ++i) first[i][i % 2] += 4.0;
  for (int64_t i = 4; i < 8; ++i) second[i][(i - 4) % 3] += 4.0;
  const std::vector<at::Tensor> logits = {first, second};
  const at::Tensor student = torch::randn({8, 5}) * 2;
  RoutingOptions options;
  const TaskRouting routing = route_by_teachers(logits, options);
  const at::Tensor nll =
      -slice_log_probabilities(student, {2, 3}).gather(1, routing.task.unsqueeze(1)).squeeze(1);
  std::vector<std::vector<double>> confident(2);
  for (int64_t i = 0; i < 8; ++i)
    if (routing.confident[i].item<bool>())
      confident[routing.task[i].item<int64_t>()].push_back(nll[i].item<double>());
  ASSERT_GE(confident[0].size(), 2u);
  ASSERT_GE(confident[1].size(), 2u);
  // The task term when `rate` of each task's confident images, the largest losses, are left out.
  const auto expected = [&](double rate) {
    double sum = 0;
    for (auto losses : confident) {
      std::sort(losses.begin(), losses.end());
      const auto drop = static_cast<size_t>(rate * static_cast<double>(losses.size()));
      for (size_t i = 0; i + drop < losses.size(); ++i) sum += losses[i];
    }
    return sum / 8.0;
  };
  const auto task = [&](double forget, double progress) {
    return routed_terms(logits, student, SliceWeights::kExpertise, RoutingRule::kGate, forget,
                        progress)
        .part("task")
        .item<double>();
  };
  // The same float32 losses, averaged over 8 images in float32 there (<= 8u of their sum, all
  // >= 0) and in double here.
  const auto near = [](double got, double want) {
    return std::abs(got - want) <= 8 * kFloat32Unit * want;
  };
  EXPECT_PRED2(near, task(0.0, 0.9), expected(0.0));
  EXPECT_PRED2(near, task(0.5, 0.0), expected(0.0)) << "nothing left out at the start";
  EXPECT_PRED2(near, task(0.5, 0.9), expected(0.5));
  EXPECT_PRED2(near, task(0.5, 0.1), expected(0.25)) << "half-way up the ramp";
  EXPECT_LT(task(0.5, 0.9), task(0.0, 0.9));
}

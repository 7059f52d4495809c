#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "core/precision.h"
#include "evaluation/evaluate.h"
#include "experiments/experiment.h"
#include "method/losses.h"
#include "models/zoo.h"
#include "routing/gate_calibration.h"
#include "routing/routing.h"
#include "teachers/teacher.h"
#include "test_util.h"
#include "training/optimizer.h"
#include "training/options_json.h"
#include "training/teach.h"

using namespace amalgam;
using test::kFloat32Unit;

TEST(ScheduledAdam, CosineAndStepSchedules) {
  auto w = torch::zeros({2}, torch::requires_grad());
  TrainOptions o;
  o.epochs = 4;
  o.schedule = Schedule::kCosine;
  ScheduledAdam cosine({{{w}, 1.0}}, o, 10);
  EXPECT_DOUBLE_EQ(cosine.factor(0), 1.0);
  // 0.5 (1 + cos(pi x 20/40)): pi rounded in double, cos(pi/2) ~ 6e-17, a few double roundings.
  EXPECT_NEAR(cosine.factor(20), 0.5, 1e-12);
  EXPECT_NEAR(cosine.factor(40), 0.0, 1e-12);
  o.schedule = Schedule::kStep;
  o.step_epochs = 2;
  o.gamma = 0.1;
  ScheduledAdam step({{{w}, 1.0}}, o, 10);
  EXPECT_DOUBLE_EQ(step.factor(19), 1.0);
  EXPECT_NEAR(step.factor(20), 0.1, 1e-12);  // pow(0.1, 1): a double rounding at most
}

TEST(ScheduledAdam, GroupsGetTheirOwnLearningRates) {
  auto a = torch::zeros({3}, torch::requires_grad());
  auto b = torch::zeros({3}, torch::requires_grad());
  TrainOptions o;
  o.lr = 1e-3;
  o.weight_decay = 0;
  o.schedule = Schedule::kConstant;
  ScheduledAdam adam({{{a}, 1.0}, {{b}, 10.0}}, o, 1);
  EXPECT_EQ(adam.learning_rates(), (std::vector<double>{1e-3, 1e-2}));
  // Adam's first step moves each parameter by its learning rate (sign of the gradient): lr / (1 +
  // eps) rounded in float32 by its moments, sqrt, bias corrections and addcdiv (< 8u of lr).
  adam.zero_grad();
  (a.sum() + b.sum()).backward();
  adam.step();
  const double eps = 1e-8;  // AdamOptions' default
  EXPECT_NEAR(a[0].item<double>(), -1e-3, 1e-3 * (eps + 8 * kFloat32Unit));
  EXPECT_NEAR(b[0].item<double>(), -1e-2, 1e-2 * (eps + 8 * kFloat32Unit));
}

TEST(TrainOptions, RejectsNonsense) {
  TrainOptions o;
  EXPECT_NO_THROW(validate(o));
  for (auto bad : std::vector<std::function<void(TrainOptions&)>>{
           [](TrainOptions& t) { t.lr = -1; }, [](TrainOptions& t) { t.lr = NAN; },
           [](TrainOptions& t) { t.batch_size = 0; }, [](TrainOptions& t) { t.epochs = 0; },
           [](TrainOptions& t) { t.step_epochs = 0; }, [](TrainOptions& t) { t.gamma = 2; }}) {
    TrainOptions t;
    bad(t);
    EXPECT_THROW(validate(t), Error);
  }
  EXPECT_THROW(parse_schedule("linear"), Error);
  EXPECT_EQ(parse_schedule("step"), Schedule::kStep);
  TrainOptions negative;
  negative.min_steps = -1;
  EXPECT_THROW(validate(negative), Error);
}

// --min-steps: a small training set gets the epochs that reach the steps; a large one keeps its.
TEST(TrainOptions, MinStepsRaiseTheEpochsOfASmallTrainingSet) {
  TrainOptions o;
  o.epochs = 3;
  o.batch_size = 128;
  o.min_steps = 1000;
  EXPECT_EQ(epochs_for(o, 3000), 44);   // 23 steps an epoch: 44 x 23 = 1012 >= 1000
  EXPECT_EQ(epochs_for(o, 1000), 143);  // 7 steps an epoch
  EXPECT_EQ(epochs_for(o, 100), 1000);  // fewer images than a batch: one step an epoch
  EXPECT_EQ(epochs_for(o, 55000), 3);   // 429 steps an epoch: --epochs already reaches them
  o.min_steps = 0;
  EXPECT_EQ(epochs_for(o, 1000), 3);
}

// A checkpoint fingerprint recorded before an option existed matches today's run with that
// option at its default (resuming an older run), and not with another value.
TEST(TrainOptions, AnOlderFingerprintWithoutNewOptionsStillMatches) {
  TrainOptions today;
  nlohmann::json older = today;
  older["augment"].erase("mixup_alpha");
  older.erase("min_steps");
  EXPECT_EQ(nlohmann::json(older.get<TrainOptions>()), nlohmann::json(today));
  today.augment.mixup_alpha = 0.4;
  EXPECT_NE(nlohmann::json(older.get<TrainOptions>()), nlohmann::json(today));
}

namespace {

// A linear classifier over the raw pixels; `bias` decides whether its output layer has one.
class LinearNetImpl : public NetworkImpl {
 public:
  LinearNetImpl(int64_t classes, bool bias)
      : head_(register_module("head",
                              torch::nn::Linear(torch::nn::LinearOptions(4, classes).bias(bias)))) {
    input_.height = input_.width = 2;
  }
  ModelOutput forward(const at::Tensor& images) override {
    return {images, head_->forward(images.flatten(1))};
  }
  std::vector<at::Tensor> head_parameters() override { return head_->parameters(); }
  const InputSpec& input() const override { return input_; }

 private:
  torch::nn::Linear head_;
  InputSpec input_;
};

at::Tensor slice_mass(NetworkImpl& net, const at::Tensor& images, const HeadLayout& head) {
  return slice_probabilities(predict_logits(net, images, 128),
                             {head.tasks[0].size(), head.tasks[1].size()});
}

HeadLayout two_tasks() {
  HeadLayout head;
  head.tasks = {TaskSpec{"a", {0, 1}, {}}, TaskSpec{"b", {2, 3, 4}, {}}};
  return head;
}

}  // namespace

// Teaching honours --head-lr-mult (it once trained every layer at one rate whatever was given).
TEST(Teach, HeadLearningRateMultiplierIsHonoured) {
  torch::manual_seed(3);
  LabeledImages data{torch::randint(0, 256, {64, 1, 28, 28}).to(torch::kUInt8),
                     torch::randint(0, 2, {64}, torch::kInt64)};
  TaskSpec task;
  task.name = "T";
  task.classes = {0, 1};
  ModelSpec spec;
  spec.arch = "resnet";
  spec.width = 4;
  const auto head_after = [&](double mult) {
    TrainOptions options = teach_defaults();
    options.epochs = 1;
    options.batch_size = 32;
    options.head_lr_mult = mult;
    const TeachResult r = teach(spec, task, data, {}, options);
    return r.network->head_parameters().at(0).detach().clone();
  };
  const at::Tensor once = head_after(1.0);
  EXPECT_TRUE(torch::equal(once, head_after(1.0)));  // seeded: the same run twice is the same
  EXPECT_FALSE(torch::equal(once, head_after(10.0)));
  EXPECT_EQ(teach_defaults().head_lr_mult, 1.0);
}

TEST(GateCalibration, ShiftsTheTaskSharesAndKeepsEachTasksAnswer) {
  torch::manual_seed(0);
  LinearNetImpl net(5, true);
  const at::Tensor images = torch::randint(0, 256, {600, 1, 2, 2}, torch::kUInt8);
  const HeadLayout head = two_tasks();
  const at::Tensor before = predict_logits(net, images, 128);
  const GateCalibration g = calibrate_task_gate(net, images, head, {0.8, 0.2});
  ASSERT_TRUE(g.applied);
  EXPECT_GT(g.bias[0], g.bias[1]);
  // The calibrated share is < 1e-6 of itself off (as in Routing, AGivenPriorMovesTheShares); the
  // float32 logits (|z| <= L) take the shift with 2u L of rounding, the slice masses 8u of theirs.
  const at::Tensor after = predict_logits(net, images, 128);
  const double logits =
      std::max(before.abs().max().item<double>(), after.abs().max().item<double>());
  EXPECT_NEAR(slice_mass(net, images, head).select(1, 0).to(torch::kFloat64).mean().item<double>(),
              0.8, 0.8 * (1e-6 + 8 * kFloat32Unit) + 2 * kFloat32Unit * logits);
  EXPECT_GT(g.share_after[0], g.share_before[0]);
  // Within a slice the shift cancels but for those roundings: a pair's difference moves by <= 4u L,
  // a softmax by half of that, and each softmax evaluation rounds by <= 6u.
  for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, 2}, {2, 5}})
    EXPECT_LE((torch::softmax(before.slice(1, begin, end), 1) -
               torch::softmax(after.slice(1, begin, end), 1))
                  .abs()
                  .max()
                  .item<double>(),
              (2 * logits + 12) * kFloat32Unit)
        << "bias " << g.bias[0] << " " << g.bias[1];
  // A task the routing gave no image stays reachable: the shift is finite.
  const GateCalibration empty = calibrate_task_gate(net, images, head, {1.0, 0.0});
  ASSERT_TRUE(empty.applied);
  EXPECT_TRUE(std::isfinite(empty.bias[1]));
  EXPECT_TRUE(torch::isfinite(predict_logits(net, images, 128)).all().item<bool>());
}

TEST(GateCalibration, AHeadWithoutBiasIsLeftAsTrained) {
  torch::manual_seed(0);
  LinearNetImpl net(5, false);
  const at::Tensor images = torch::randint(0, 256, {50, 1, 2, 2}, torch::kUInt8);
  const at::Tensor before = predict_logits(net, images, 128);
  EXPECT_FALSE(calibrate_task_gate(net, images, two_tasks(), {0.5, 0.5}).applied);
  EXPECT_TRUE(torch::equal(before, predict_logits(net, images, 128)));
}

TEST(Precision, Bf16AutocastsConvolutionsOnlyInsideTheGuard) {
  const c10::Device cpu(c10::kCPU);
  EXPECT_EQ(parse_precision("fp32", cpu), Precision::kFp32);
  EXPECT_EQ(parse_precision("bf16", cpu), Precision::kBf16);
  EXPECT_EQ(parse_precision("auto", cpu),
            has_native_bf16(cpu) ? Precision::kBf16 : Precision::kFp32);
  try {
    parse_precision("fp8", cpu);
    FAIL() << "fp8 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--precision"), std::string::npos);
  }
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  const at::Tensor x = torch::rand({2, 3, 8, 8});
  {
    AutocastGuard autocast(Precision::kBf16, cpu);
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kBFloat16);
  }
  EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
  {
    AutocastGuard autocast(Precision::kFp32, cpu);
    EXPECT_EQ(conv->forward(x).scalar_type(), torch::kFloat32);
  }
  TrainOptions options;
  options.precision = "half";
  EXPECT_THROW(validate(options), Error);
}

TEST(Precision, LossesSumInFloat32InsideABf16Region) {
  const c10::Device cpu(c10::kCPU);
  torch::manual_seed(0);
  const at::Tensor x = torch::randn({16, 8}), y = torch::randn({16, 8}) + 0.5;
  const at::Tensor logits = torch::randn({16, 5}),
                   targets = torch::softmax(torch::randn({16, 5}), 1);
  const at::Tensor mmd = mmd_loss(x, y, default_mmd_sigmas());
  const at::Tensor ce = soft_cross_entropy(logits, targets);
  torch::nn::Conv2d conv(torch::nn::Conv2dOptions(3, 4, 3));
  AutocastGuard autocast(Precision::kBf16, cpu);
  // Inside a bf16 region the Gram matrix would be a bfloat16 matmul; the losses turn it off.
  const at::Tensor mmd_bf16 = mmd_loss(x, y, default_mmd_sigmas());
  EXPECT_EQ(mmd_bf16.scalar_type(), torch::kFloat32);
  EXPECT_TRUE(torch::equal(mmd_bf16, mmd));
  EXPECT_TRUE(torch::equal(weighted_mmd_loss(x, y, torch::ones({16}), default_mmd_sigmas()), [&] {
    AutocastOff off;
    return weighted_mmd_loss(x, y, torch::ones({16}), default_mmd_sigmas());
  }()));
  EXPECT_TRUE(torch::equal(soft_cross_entropy(logits, targets), ce));
  // ...and give it back when they end.
  EXPECT_EQ(conv->forward(torch::rand({1, 3, 8, 8})).scalar_type(), torch::kBFloat16);
}

TEST(Precision, Bf16TeacherCacheKeepsFeaturesInBfloat16AndGathersFloat32) {
  torch::manual_seed(0);
  ModelSpec spec = zoo_spec("resnet", 8, 1);
  spec.num_classes = 5;
  const std::vector<Teacher> teachers = {make_teacher(make_network(spec), parse_task("A=0-4"))};
  const at::Tensor images = torch::randint(0, 256, {40, 1, 28, 28}, torch::kUInt8);
  const c10::Device cpu(c10::kCPU);
  const TeacherOutputCache fp32 = cache_teacher_outputs(teachers, images, 16, cpu);
  const TeacherOutputCache bf16 =
      cache_teacher_outputs(teachers, images, 16, cpu, Precision::kBf16);
  EXPECT_EQ(fp32.outputs[0].features.scalar_type(), torch::kFloat32);
  EXPECT_EQ(bf16.outputs[0].features.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(bf16.outputs[0].logits.scalar_type(), torch::kFloat32);
  EXPECT_LT(bf16.bytes(), fp32.bytes() * 0.6);
  // The cache limit is checked against what the cache will really hold at its precision.
  EXPECT_EQ(teacher_cache_bytes(teachers, 40), fp32.bytes());
  EXPECT_EQ(teacher_cache_bytes(teachers, 40, Precision::kBf16), bf16.bytes());
  const at::Tensor indices = torch::arange(0, 40, 3);
  const std::vector<ModelOutput> got = bf16.gather(indices, cpu);
  const std::vector<ModelOutput> want = fp32.gather(indices, cpu);
  EXPECT_EQ(got[0].features.scalar_type(), torch::kFloat32);
  // bfloat16 rounds to u = 2^-8 of a value: the stem's input, weight, output and BatchNorm (4u),
  // then per block 2 x (weight, output, BatchNorm) and the residual add (7u): 25u of the features
  // over the 3 blocks, 3u more (pool, weight, output) of the head's terms |W| max|f| + |b|.
  const double u = 0x1p-8, features = want[0].features.abs().max().item<double>();
  EXPECT_LE((got[0].features - want[0].features).abs().max().item<double>(), 25 * u * features);
  const std::vector<at::Tensor> head = teachers[0].network->head_parameters();  // weight, bias
  const double terms =
      features * head[0].abs().sum(1).max().item<double>() + head[1].abs().max().item<double>();
  EXPECT_LE((got[0].logits - want[0].logits).abs().max().item<double>(), 28 * u * terms);
}

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "training/optimizer.h"
#include "training/options_json.h"

using namespace amalgam;

TEST(ScheduledAdam, CosineAndStepSchedules) {
  auto w = torch::zeros({2}, torch::requires_grad());
  TrainOptions o;
  o.epochs = 4;
  o.schedule = Schedule::kCosine;
  ScheduledAdam cosine({{{w}, 1.0}}, o, 10);
  EXPECT_DOUBLE_EQ(cosine.factor(0), 1.0);
  EXPECT_NEAR(cosine.factor(20), 0.5, 1e-12);
  EXPECT_NEAR(cosine.factor(40), 0.0, 1e-12);
  o.schedule = Schedule::kStep;
  o.step_epochs = 2;
  o.gamma = 0.1;
  ScheduledAdam step({{{w}, 1.0}}, o, 10);
  EXPECT_DOUBLE_EQ(step.factor(19), 1.0);
  EXPECT_NEAR(step.factor(20), 0.1, 1e-12);
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
  // Adam's first step moves each parameter by its learning rate (sign of the gradient).
  adam.zero_grad();
  (a.sum() + b.sum()).backward();
  adam.step();
  EXPECT_NEAR(a[0].item<double>(), -1e-3, 1e-6);
  EXPECT_NEAR(b[0].item<double>(), -1e-2, 1e-5);
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
}

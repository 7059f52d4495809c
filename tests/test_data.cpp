#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "core/error.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/task.h"
#include "evaluation/evaluate.h"

using namespace amalgam;

namespace {

LabeledImages synthetic(int64_t n, int64_t classes) {
  LabeledImages d;
  d.images = torch::arange(n, torch::kInt64)
                 .remainder(256)
                 .to(torch::kUInt8)
                 .view({n, 1, 1, 1})
                 .expand({n, 1, 2, 2})
                 .contiguous();
  d.labels = torch::arange(n, torch::kInt64).remainder(classes);
  return d;
}

}  // namespace

TEST(Task, ParsesNamesListsAndRanges) {
  const TaskSpec a = parse_task("A=0-4");
  EXPECT_EQ(a.name, "A");
  EXPECT_EQ(a.classes, (std::vector<int64_t>{0, 1, 2, 3, 4}));
  const TaskSpec b = parse_task("5,7,300-301");
  EXPECT_EQ(b.name, "5,7,300-301");
  EXPECT_EQ(b.classes, (std::vector<int64_t>{5, 7, 300, 301}));
  EXPECT_EQ(b.local_index(300), 2);
  EXPECT_EQ(b.local_index(6), -1);
  EXPECT_THROW(parse_task("A=x-4"), Error);
  EXPECT_THROW(parse_task("A=4-1"), Error);
  EXPECT_THROW(parse_task("A=3"), Error);
  EXPECT_THROW(parse_task("A=1,1"), Error);
  EXPECT_THROW(check_disjoint({parse_task("A=0-4"), parse_task("B=4-6")}), Error);
}

TEST(Dataset, SelectTaskRemapsLabels) {
  const LabeledImages d = synthetic(100, 10);
  const LabeledImages t = select_task(d, parse_task("T=7,3"));
  EXPECT_EQ(t.size(), 20);
  // Class 7 -> 0, class 3 -> 1, in data order.
  const auto original = d.labels.index({d.labels.eq(7).logical_or(d.labels.eq(3))});
  EXPECT_TRUE(torch::equal(t.labels, original.eq(3).to(torch::kInt64)));
}

TEST(Dataset, SplitIsDisjointSeededAndComplete) {
  const LabeledImages d = synthetic(250, 10);  // pixel value = image index: all distinct
  const TrainValSplit s1 = split_train_val(d, 50, 9);
  const TrainValSplit s2 = split_train_val(d, 50, 9);
  const TrainValSplit s3 = split_train_val(d, 50, 10);
  EXPECT_EQ(s1.val.size(), 50);
  EXPECT_EQ(s1.train.size(), 200);
  EXPECT_TRUE(torch::equal(s1.val.images, s2.val.images));
  EXPECT_FALSE(torch::equal(s1.val.images, s3.val.images));
  std::set<int> seen;
  for (const auto* part : {&s1.train, &s1.val})
    for (int64_t i = 0; i < part->size(); ++i) seen.insert(part->images[i][0][0][0].item<int>());
  EXPECT_EQ(seen.size(), 250u);
  EXPECT_THROW(split_train_val(d, 250, 0), Error);
}

TEST(BatchLoader, CoversEveryImageOncePerEpochInSeededOrder) {
  const LabeledImages d = synthetic(250, 10);
  BatchLoaderOptions o;
  o.batch_size = 64;
  o.seed = 3;
  BatchLoader a(d.images, d.labels, o), b(d.images, d.labels, o);
  EXPECT_EQ(a.batches_per_epoch(), 4);
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    a.start_epoch(epoch);
    b.start_epoch(epoch);
    std::multiset<int64_t> labels;
    int64_t count = 0;
    while (auto batch = a.next()) {
      auto other = b.next();
      ASSERT_TRUE(other.has_value());
      EXPECT_TRUE(torch::equal(batch->images, other->images));
      EXPECT_LE(batch->images.max().item<float>(), 1.0f);
      // Each image's pixel encodes its index, so labels must follow images.
      const auto index =
          (batch->images.select(1, 0).select(1, 0).select(1, 0) * 255).round().to(torch::kInt64);
      EXPECT_TRUE(torch::equal(index.remainder(10), batch->labels.remainder(10)));
      count += batch->images.size(0);
    }
    EXPECT_FALSE(b.next().has_value());
    EXPECT_EQ(count, 250);
  }
  o.batch_size = 0;
  EXPECT_THROW(BatchLoader(d.images, d.labels, o), Error);
}

namespace {

// A network whose logits are one-hot at the index stored in the first pixel: lets a test choose
// the prediction of every image.
class PixelOracleImpl : public NetworkImpl {
 public:
  explicit PixelOracleImpl(int64_t outputs) : outputs_(outputs) {}
  ModelOutput forward(const at::Tensor& images) override {
    const auto index =
        (images.select(1, 0).select(1, 0).select(1, 0) * 255).round().to(torch::kInt64);
    return {images, torch::one_hot(index.clamp_max(outputs_ - 1), outputs_).to(torch::kFloat32)};
  }
  std::vector<at::Tensor> head_parameters() override { return {}; }
  const InputSpec& input() const override { return input_; }

 private:
  int64_t outputs_;
  InputSpec input_;
};

}  // namespace

TEST(Evaluate, UnionAccuracyMapsHeadToClassIdsAbove255) {
  HeadLayout head;
  head.tasks = {parse_task("A=300-302"), parse_task("B=1000-1001")};
  // Head outputs: 0..2 -> 300..302, 3..4 -> 1000..1001.
  LabeledImages data;
  const std::vector<int64_t> predicted = {0, 2, 3, 4, 1, 4};
  const std::vector<int64_t> truth = {300, 302, 1000, 1000, 301, 1001};
  data.images = torch::tensor(predicted, torch::kInt64).to(torch::kUInt8).view({6, 1, 1, 1});
  data.labels = torch::tensor(truth, torch::kInt64);
  PixelOracleImpl oracle(5);
  const StudentScores s = evaluate_student(oracle, head, data, 4);
  EXPECT_NEAR(s.union_accuracy, 5.0 / 6.0, 1e-9);
  // Task A images: predictions 0,2,1 (slice 0..2) vs local labels 0,2,1.
  EXPECT_NEAR(s.task_accuracy[0], 1.0, 1e-9);
  // Task B images: predictions 3,4,4 -> slice-local 0,1,1 vs local labels 0,0,1.
  EXPECT_NEAR(s.task_accuracy[1], 2.0 / 3.0, 1e-9);
}

TEST(NetworkInput, ConvertsPixelsAndNeverChangesItsInput) {
  const at::Tensor pixels = torch::full({1, 1, 2, 2}, 255, torch::kUInt8);
  EXPECT_TRUE(torch::allclose(to_network_input(pixels), torch::ones({1, 1, 2, 2})));
  const at::Tensor scaled = torch::full({1, 1, 2, 2}, 51.0f);
  const at::Tensor out = to_network_input(scaled);
  EXPECT_FLOAT_EQ(scaled[0][0][0][0].item<float>(), 51.0f);
  EXPECT_NEAR(out[0][0][0][0].item<float>(), 0.2f, 1e-6);
}

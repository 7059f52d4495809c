#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>
#include <set>

#include "core/error.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/digits.h"
#include "data/task.h"
#include "evaluation/evaluate.h"
#include "experiments/experiment.h"
#include "test_util.h"

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
  EXPECT_NEAR(s.union_accuracy, 5.0 / 6.0, 1e-9);  // counts over counts: a double rounding
  // Task A images: predictions 0,2,1 (slice 0..2) vs local labels 0,2,1.
  EXPECT_NEAR(s.task_accuracy[0], 1.0, 1e-9);
  // Task B images: predictions 3,4,4 -> slice-local 0,1,1 vs local labels 0,0,1.
  EXPECT_NEAR(s.task_accuracy[1], 2.0 / 3.0, 1e-9);
}

TEST(NetworkInput, ConvertsPixelsAndNeverChangesItsInput) {
  const at::Tensor pixels = torch::full({1, 1, 2, 2}, 255, torch::kUInt8);
  EXPECT_TRUE(torch::equal(to_network_input(pixels), torch::ones({1, 1, 2, 2})));  // 255 / 255
  const at::Tensor scaled = torch::full({1, 1, 2, 2}, 51.0f);
  const at::Tensor out = to_network_input(scaled);
  EXPECT_FLOAT_EQ(scaled[0][0][0][0].item<float>(), 51.0f);
  EXPECT_EQ(out[0][0][0][0].item<float>(), 0.2f);  // 51 / 255 = 0.2: one correctly rounded division
}

namespace {

// A digits table of `rows` given as text, in a fresh folder.
std::string digits_table(const std::string& name, const std::string& rows) {
  const std::string path = test::temp_dir(name) + "/digits.csv";
  std::ofstream(path) << rows;
  return path;
}

std::string digit_row(int64_t ink, int64_t digit, int64_t values = 64) {
  std::string row;
  for (int64_t i = 0; i < values; ++i) row += std::to_string(ink) + ",";
  return row + std::to_string(digit) + "\n";
}

std::string error_of(const std::string& path) {
  try {
    load_digits_csv(path, 28, 0);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Digits, ReadsTheTableAsUpsampledBrightOnDarkImages) {
  const std::string path = digits_table("digits_ok", digit_row(16, 3) + "\n" + digit_row(0, 9));
  const LabeledImages d = load_digits_csv(path, 28, 10);
  ASSERT_EQ(d.images.sizes(), (std::vector<int64_t>{2, 1, 28, 28}));
  EXPECT_EQ(d.images.scalar_type(), torch::kUInt8);
  EXPECT_EQ(d.labels[0].item<int64_t>(), 13);
  EXPECT_EQ(d.labels[1].item<int64_t>(), 19);
  EXPECT_EQ(d.images[0].min().item<int64_t>(), 255);  // full ink is white
  EXPECT_EQ(d.images[1].max().item<int64_t>(), 0);    // no ink is black
}

TEST(Digits, RefusesMalformedRowsNamingTheLine) {
  EXPECT_NE(error_of(digits_table("digits_short", digit_row(1, 2) + digit_row(1, 2, 63)))
                .find("digits.csv:2: 64 values, expected 65"),
            std::string::npos);
  EXPECT_NE(error_of(digits_table("digits_ink", digit_row(17, 2))).find("outside 0..16"),
            std::string::npos);
  EXPECT_NE(error_of(digits_table("digits_label", digit_row(1, 10))).find("not a digit"),
            std::string::npos);
  EXPECT_NE(error_of(digits_table("digits_word", "a," + digit_row(1, 2, 63))).find("not a number"),
            std::string::npos);
  EXPECT_NE(error_of("/nonexistent/digits.csv.gz").find("python3-sklearn"), std::string::npos);
}

TEST(Digits, DebiansTableHoldsAllTenDigits) {
  // scripts/setup.sh installs python3-sklearn, which ships the table the cross-domain set-up uses.
  const LabeledImages d = load_digits_csv(kSklearnDigitsPath, 28, 0);
  EXPECT_EQ(d.size(), 1797);
  const at::Tensor counts = torch::bincount(d.labels);
  ASSERT_EQ(counts.size(0), 10);
  EXPECT_GE(counts.min().item<int64_t>(), 170);
  EXPECT_GT(d.images.to(torch::kFloat).mean().item<double>(), 20.0);  // ink, not blank images
}

TEST(CrossDomain, EverySplitHoldsBothDomainsInOneProportion) {
  ExperimentData fashion;
  fashion.split = split_train_val(synthetic(4000, 10), 1000, kDefaultSplitSeed);
  fashion.test = synthetic(1500, 10);
  LabeledImages digits = synthetic(250, 10);  // 250 distinct pixel values
  digits.labels = digits.labels + 10;
  const ExperimentData d = cross_domain_data(fashion, digits, DigitsHoldOut{50, 100}, 3);
  const auto count_digits = [](const LabeledImages& x) {
    return x.labels.ge(10).sum().item<int64_t>();
  };
  EXPECT_EQ(count_digits(d.split.train), 100);
  EXPECT_EQ(d.split.train.size(), 400);
  EXPECT_EQ(count_digits(d.split.val), 50);
  EXPECT_EQ(d.split.val.size(), 200);
  EXPECT_EQ(count_digits(d.test), 100);
  EXPECT_EQ(d.test.size(), 400);
  // The teachers learn from every clothing image of the training split and the digits' own.
  EXPECT_EQ(d.teacher_data().train.size(), 3000 + 100);
  EXPECT_EQ(count_digits(d.teacher_data().train), 100);
  EXPECT_EQ(&fashion.teacher_data(), &fashion.split);
  // No digit image is in two splits (the synthetic images are their index modulo 256).
  std::set<int64_t> seen;
  for (const auto* x : {&d.split.train, &d.split.val, &d.test}) {
    const at::Tensor rows = x->labels.ge(10).nonzero().flatten();
    for (int64_t i = 0; i < rows.size(0); ++i) {
      const int64_t pixel = x->images[rows[i].item<int64_t>()][0][0][0].item<int64_t>();
      EXPECT_TRUE(seen.insert(pixel).second) << "digit image " << pixel << " in two splits";
    }
  }
  EXPECT_EQ(seen.size(), 250u);
  EXPECT_THROW(cross_domain_data(fashion, digits, DigitsHoldOut{200, 100}, 3), Error);
}

// A tiny amalgamation on real Fashion-MNIST images: a few hundred images, seconds.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <type_traits>

#include "core/runtime.h"
#include "data/dataset.h"
#include "evaluation/evaluate.h"
#include "method/common_feature_block.h"
#include "method/objective.h"
#include "models/zoo.h"
#include "teachers/teacher.h"
#include "training/amalgamate.h"
#include "training/teach.h"

using namespace amalgam;

namespace {

struct Fixture {
  TrainValSplit data;
  LabeledImages test;
  std::vector<Teacher> teachers;
};

// Two heterogeneous teachers (resnet on 0-4, vgg on 5-9), trained once for all tests here.
const Fixture& fixture() {
  static const Fixture f = [] {
    configure_threads(0);
    Fixture f;
    f.data = split_train_val(load_idx_split(AMALGAM_FASHION_DIR, "train"), 500, 1);
    f.data.train = subsample(f.data.train, 1200, 2);
    f.test = subsample(load_idx_split(AMALGAM_FASHION_DIR, "test"), 1000, 3);
    TrainOptions t = teach_defaults();
    t.epochs = 8;
    t.batch_size = 32;
    t.lr = 2e-3;
    const std::vector<std::pair<std::string, std::string>> plans = {{"A=0-4", "resnet"},
                                                                    {"B=5-9", "vgg"}};
    for (const auto& [task_text, arch] : plans) {
      const TaskSpec task = parse_task(task_text);
      ModelSpec spec;
      spec.arch = arch;
      spec.width = 8;
      const TeachResult r = teach(spec, task, select_task(f.data.train, task), {}, t);
      f.teachers.push_back(make_teacher(r.network, task));
    }
    return f;
  }();
  return f;
}

AmalgamateConfig tiny_options(const std::string& method, int64_t epochs) {
  AmalgamateConfig o;
  o.student.arch = "resnet";
  o.student.width = 8;
  o.objective = method_config(method);
  if (o.objective.common_space) o.objective.common_space->channels = 16;
  o.train.epochs = epochs;
  o.train.batch_size = 32;
  o.train.lr = 2e-3;
  o.train.block_lr_mult = 1.0;
  return o;
}

template <typename T, typename = void>
struct has_labels : std::false_type {};
template <typename T>
struct has_labels<T, std::void_t<decltype(std::declval<T>().labels)>> : std::true_type {};

}  // namespace

TEST(EndToEnd, TinyCflStudentIsWellAboveChanceOnEveryTask) {
  const Fixture& f = fixture();
  for (const auto& t : f.teachers) EXPECT_GT(evaluate_teacher(t, f.test, 256), 0.6) << t.task.name;
  const AmalgamationResult r =
      amalgamate(f.teachers, strip_labels(f.data.train), tiny_options("routed-cfl", 8));
  ASSERT_NE(r.objective->common_space(), nullptr);
  EXPECT_LT(r.history.back().loss.get("total"), r.history.front().loss.get("total"))
      << "loss must go down";
  const StudentScores s = evaluate_student(*r.student, r.head, f.test, 256);
  ASSERT_EQ(s.task_accuracy.size(), 2u);
  std::printf("tiny CFL student: task A %.3f, task B %.3f, union %.3f\n", s.task_accuracy[0],
              s.task_accuracy[1], s.union_accuracy);
  for (size_t i = 0; i < 2; ++i)
    EXPECT_GT(s.task_accuracy[i], 0.5) << "task " << i << " (chance is 0.2)";
  EXPECT_GT(s.union_accuracy, 0.3) << "chance is 0.1";
}

TEST(EndToEnd, NoLabelReachesTheAmalgamationLoop) {
  // The transfer set type has no label member: the loop cannot be handed one.
  static_assert(!has_labels<TransferSet>::value, "TransferSet must not carry labels");
  static_assert(has_labels<LabeledImages>::value, "detector sanity check");
  // And the result is a function of the images alone: scrambling the labels of the source data
  // changes nothing, bit for bit.
  const Fixture& f = fixture();
  LabeledImages scrambled = subsample(f.data.train, 300, 4);
  const LabeledImages original = scrambled;
  scrambled.labels = torch::randint(0, 1000, {scrambled.size()}, torch::kInt64);
  // Every method and every routing rule (the routing is estimated from the teachers' outputs).
  std::vector<AmalgamateConfig> configs;
  for (const auto& method : methods()) configs.push_back(tiny_options(method.name, 1));
  for (RoutingRule rule : {RoutingRule::kTeachers, RoutingRule::kConcatenated}) {
    configs.push_back(tiny_options("routed-cfl", 1));
    configs.back().objective.routing->rule = rule;
    // Kept whatever the random teachers' scores agree on, so each rule is what trains.
    configs.back().objective.routing->label_free_check = false;
  }
  for (SliceWeights weights : {SliceWeights::kResponsibility, SliceWeights::kUniform}) {
    configs.push_back(tiny_options("routed-cfl", 1));
    configs.back().objective.routing->slice_weights = weights;
  }
  // The gate's small-loss rule ranks images by the student's loss against the routing.
  configs.push_back(tiny_options("routed-cfl", 1));
  configs.back().objective.routing->gate_forget = 0.5;
  configs.back().objective.routing->calibrate_gate = false;
  configs.push_back(tiny_options("routed-kd", 1));
  configs.back().objective.routing->score = RoutingScore::kMaxLogit;
  configs.back().teachers_see_clean_images = true;
  configs.back().train.augment.crop_padding = 2;
  // Mixup: the teachers answer the mixed images on every batch.
  configs.push_back(tiny_options("routed-kd", 1));
  configs.back().train.augment.mixup_alpha = 0.4;
  configs.back().train.augment.horizontal_flip = true;
  // A step budget (--steps) that cuts the last epoch short; the label-free routing check on, and
  // off as after a labeled check.
  configs.push_back(tiny_options("routed-kd", 1));
  configs.back().train.steps = 3;
  configs.push_back(tiny_options("routed-kd", 1));
  configs.back().objective.routing->label_free_check = false;
  for (const auto& config : configs) {
    const auto a = amalgamate(f.teachers, strip_labels(original), config);
    const auto b = amalgamate(f.teachers, strip_labels(scrambled), config);
    const auto pa = a.student->parameters(), pb = b.student->parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i)
      EXPECT_TRUE(torch::equal(pa[i], pb[i])) << nlohmann::json(config.objective).dump();
  }
}

TEST(EndToEnd, TeacherCacheTrainsLikeLiveTeachers) {
  // Cached outputs and live ones come from teacher calls of one batch shape (the step's; the
  // last partial batch padded), so the kernels take the same path for every image: bitwise equal
  // by construction, on any processor. 300 images in batches of tiny_options' size leave a
  // partial last batch, which the padding must cover.
  const Fixture& f = fixture();
  const TransferSet transfer = strip_labels(subsample(f.data.train, 300, 6));
  AmalgamateConfig live = tiny_options("routed-cfl", 1), cached = live;
  ASSERT_NE(transfer.size() % live.train.batch_size, 0) << "the test needs a partial batch";
  live.cache_teachers = false;
  cached.cache_teachers = true;
  const auto a = amalgamate(f.teachers, transfer, live);
  const auto b = amalgamate(f.teachers, transfer, cached);
  EXPECT_EQ(a.history[0].loss.get("total"), b.history[0].loss.get("total"));
  const auto pa = a.student->parameters(), pb = b.student->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(torch::equal(pa[i], pb[i])) << i;
}

TEST(EndToEnd, FixedCommonSpaceStaysAtItsInitialisation) {
  const Fixture& f = fixture();
  AmalgamateConfig options = tiny_options("routed-cfl", 1);
  options.objective.common_space->fixed = true;
  auto r = amalgamate(f.teachers, strip_labels(subsample(f.data.train, 200, 7)), options);
  // Rebuild the state amalgamate started from: same seed, same construction order.
  torch::manual_seed(options.train.seed);
  make_network(r.student_spec);
  CommonFeatureBlockImpl& block = *r.objective->common_space();
  CommonFeatureBlock initial(block.options());
  const auto fixed = block.common_space_parameters();
  const auto start = initial->common_space_parameters();
  ASSERT_EQ(fixed.size(), start.size());
  for (size_t i = 0; i < fixed.size(); ++i) {
    EXPECT_TRUE(torch::equal(fixed[i], start[i])) << "common-space parameter " << i << " moved";
    EXPECT_FALSE(fixed[i].requires_grad());
  }
  const auto trained = block.decoder_parameters();
  const auto untrained = initial->decoder_parameters();
  bool decoders_moved = false;
  for (size_t i = 0; i < trained.size(); ++i)
    decoders_moved = decoders_moved || !torch::equal(trained[i], untrained[i]);
  EXPECT_TRUE(decoders_moved) << "the decoders still learn";
}

TEST(EndToEnd, TeachersStayFrozen) {
  const Fixture& f = fixture();
  std::vector<at::Tensor> before;
  for (const auto& t : f.teachers)
    for (const auto& p : t.network->parameters()) before.push_back(p.clone());
  for (const auto& t : f.teachers)
    for (const auto& b : t.network->buffers()) before.push_back(b.clone());
  amalgamate(f.teachers, strip_labels(subsample(f.data.train, 200, 5)),
             tiny_options("routed-cfl", 1));
  size_t k = 0;
  for (const auto& t : f.teachers)
    for (const auto& p : t.network->parameters()) EXPECT_TRUE(torch::equal(p, before[k++]));
  for (const auto& t : f.teachers)
    for (const auto& b : t.network->buffers()) EXPECT_TRUE(torch::equal(b, before[k++]));
}

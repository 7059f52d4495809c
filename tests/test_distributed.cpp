// Data parallelism on loopback: ranks as threads of this process, each with its own process
// group (c10d keeps one group per instance, so threads behave like processes here).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "core/error.h"
#include "data/batch_loader.h"
#include "distributed/autograd_collectives.h"
#include "distributed/launcher.h"
#include "distributed/process_group.h"
#include "distributed/replica_sync.h"
#include "method/common_feature_block.h"
#include "method/losses.h"
#include "method/objective.h"
#include "models/layers.h"
#include "test_util.h"

using namespace amalgam;

namespace {

DistributedOptions rank_options(int port, int world, int rank, double timeout_s = 20) {
  DistributedOptions o;
  o.url = "tcp://127.0.0.1:" + std::to_string(port);
  o.world_size = world;
  o.rank = rank;
  o.timeout_s = timeout_s;
  return o;
}

// Runs body(group) on `world` ranks, one thread each; rethrows the first rank's failure.
void run_ranks(int world, const std::function<void(ProcessGroup&)>& body) {
  const int port = free_loopback_port();
  std::vector<std::exception_ptr> errors(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        ProcessGroup group(rank_options(port, world, r));
        body(group);
      } catch (...) {
        errors[static_cast<size_t>(r)] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

using test::error_of;
using test::kFloat32Unit;

}  // namespace

TEST(Distributed, RejectsBadOptions) {
  EXPECT_NE(error_of([] { parse_dist_url("127.0.0.1:29500"); }).find("--dist-url"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_dist_url("tcp://host:99999"); }).find("not a TCP port"),
            std::string::npos);
  EXPECT_EQ(parse_dist_url("tcp://[::1]:80").host, "::1");
  DistributedOptions o = rank_options(29500, 2, 2);
  EXPECT_NE(error_of([&] { validate(o); }).find("--rank"), std::string::npos);
  o = rank_options(29500, 2, 1);
  o.url.clear();
  EXPECT_NE(error_of([&] { validate(o); }).find("--dist-url: required"), std::string::npos);
}

TEST(Distributed, ShardsOfAStepMakeTheWholeBatch) {
  const at::Tensor images =
      torch::arange(40 * 4, torch::kInt64).to(torch::kUInt8).view({40, 1, 2, 2});
  BatchLoaderOptions whole_options;
  whole_options.batch_size = 12;
  whole_options.drop_last = true;
  whole_options.seed = 3;
  BatchLoader whole(images, at::Tensor(), whole_options);
  std::vector<std::unique_ptr<BatchLoader>> shards;
  for (int r = 0; r < 3; ++r) {
    BatchLoaderOptions o = whole_options;
    o.shard_count = 3;
    o.shard_index = r;
    shards.push_back(std::make_unique<BatchLoader>(images, at::Tensor(), o));
  }
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    whole.start_epoch(epoch);
    for (auto& s : shards) s->start_epoch(epoch);
    int64_t steps = 0;
    std::set<int64_t> seen;
    while (auto batch = whole.next()) {
      std::vector<at::Tensor> parts;
      for (auto& s : shards) {
        auto part = s->next();
        ASSERT_TRUE(part.has_value());
        EXPECT_EQ(part->indices.size(0), 4);
        parts.push_back(part->indices);
      }
      EXPECT_TRUE(torch::equal(torch::cat(parts), batch->indices)) << "step " << steps;
      for (int64_t i = 0; i < batch->indices.size(0); ++i)
        EXPECT_TRUE(seen.insert(batch->indices[i].item<int64_t>()).second);
      ++steps;
    }
    EXPECT_EQ(steps, 3);
    for (auto& s : shards) EXPECT_FALSE(s->next().has_value());
  }
  BatchLoaderOptions uneven = whole_options;
  uneven.shard_count = 5;
  EXPECT_NE(error_of([&] { BatchLoader(images, at::Tensor(), uneven); }).find("--batch-size"),
            std::string::npos);
}

TEST(Distributed, CollectivesOnLoopback) {
  run_ranks(3, [](ProcessGroup& group) {
    const double r = group.rank();
    std::vector<at::Tensor> sums = {torch::full({5}, r + 1), torch::full({2, 2}, 2 * r)};
    group.all_reduce_sum(sums);  // small integers: exact in float32 in any order
    EXPECT_TRUE(torch::equal(sums[0], torch::full({5}, 6.0)));
    EXPECT_TRUE(torch::equal(sums[1], torch::full({2, 2}, 6.0)));
    at::Tensor best = torch::tensor({static_cast<int64_t>(group.rank() == 1 ? 15 : 0)});
    group.all_reduce_max(best);
    EXPECT_EQ(best.item<int64_t>(), 15);
    at::Tensor value = torch::full({3}, r);
    group.broadcast(value, 2);
    EXPECT_TRUE(torch::equal(value, torch::full({3}, 2.0)));  // copies: exact
    const at::Tensor gathered = group.all_gather(torch::full({2, 1}, r));
    EXPECT_TRUE(torch::equal(gathered.view({-1}),
                             torch::tensor({0., 0., 1., 1., 2., 2.}, torch::kFloat32)));
    EXPECT_EQ(group.broadcast_bytes(group.rank() == 0 ? std::string("abc\0d", 5) : ""),
              std::string("abc\0d", 5));
    group.require_same("same everywhere", "options");
    const std::string mismatch =
        error_of([&] { group.require_same(group.rank() == 2 ? "other" : "same", "options"); });
    EXPECT_NE(mismatch.find("rank 2's options differ from rank 0's"), std::string::npos)
        << mismatch;
  });
}

// The heart of data-parallel equivalence: 2 ranks with half a batch each, MMD over the gathered
// batch and gradients averaged, give the gradient one process computes on the whole batch.
TEST(Distributed, TwoRanksGiveTheWholeBatchGradient) {
  CommonFeatureBlockOptions shapes;
  shapes.teacher_shapes = {{12, 4, 4}, {6, 2, 2}};
  shapes.student_shape = {10, 4, 4};
  shapes.common_channels = 8;
  torch::manual_seed(5);
  const int64_t batch = 8;
  const at::Tensor student_features = torch::randn({batch, 10, 4, 4});
  const at::Tensor student_logits = torch::randn({batch, 5});
  const std::vector<ModelOutput> teachers = {
      {torch::randn({batch, 12, 4, 4}), torch::randn({batch, 3})},
      {torch::randn({batch, 6, 2, 2}), torch::randn({batch, 2})}};
  ObjectiveSetup setup;
  setup.config = method_config("cfl");  // the common-space terms must see the whole batch
  setup.config.common_space->channels = shapes.common_channels;
  setup.teacher_shapes = shapes.teacher_shapes;
  setup.student_shape = shapes.student_shape;
  Objective reference = make_objective(setup);
  const auto rows = [](const ModelOutput& o, int64_t begin, int64_t end) {
    return ModelOutput{o.features.slice(0, begin, end), o.logits.slice(0, begin, end)};
  };
  // One process, whole batch.
  at::Tensor features = student_features.clone().requires_grad_(true);
  const LossTerms whole = reference->loss({features, student_logits}, teachers, {});
  whole.total.backward();
  std::vector<at::Tensor> expected;
  for (const auto& p : reference->parameters()) expected.push_back(p.grad().clone());

  run_ranks(2, [&](ProcessGroup& group) {
    Objective block = make_objective(setup);
    if (group.rank() == 0) {  // rank 0 holds the reference's weights; rank 1 its own random ones
      torch::NoGradGuard no_grad;
      const auto from = reference->parameters();
      auto to = block->parameters();
      for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
    }
    broadcast_module_state(group, *block);
    const int64_t begin = group.rank() * batch / 2, end = begin + batch / 2;
    std::vector<ModelOutput> local_teachers;
    for (const auto& t : teachers) local_teachers.push_back(rows(t, begin, end));
    at::Tensor local = student_features.slice(0, begin, end).clone().requires_grad_(true);
    const LossTerms terms =
        block->loss({local, student_logits.slice(0, begin, end)}, local_teachers,
                    {[&](const at::Tensor& x) { return gather_batch(x, group); }, {}});
    // The MMD is computed on the whole batch on every rank: the one-process value but for the
    // features' sums (<= 145 terms: a 3x3 convolution over 16 channels + bias), which batches of 4
    // may order apart from 8: <= 145u of the terms, 2 x (kxx + kyy + 2 kxy) of kernels <= 7.
    const double mmd_terms = 2 * 4 * static_cast<double>(default_mmd_sigmas().size());
    EXPECT_NEAR(terms.part("mmd").item<double>(), whole.part("mmd").item<double>(),
                145 * kFloat32Unit * mmd_terms);
    terms.total.backward();
    std::vector<at::Tensor> parameters = block->parameters();
    GradientAverager averager(group, parameters, 1024);  // small buckets: several of them
    EXPECT_GT(averager.buckets(), 1);
    averager.average();
    // Those forward sums, and backward ones of <= 128 terms (a weight gradient over B*H*W = 8*4*4
    // positions, split over the ranks) in another order: <= (145 + 128)u of the gradients.
    const double relative = (145 + 128) * kFloat32Unit;
    for (size_t i = 0; i < parameters.size(); ++i) {
      const double scale = expected[i].abs().max().item<double>() + 1e-12;
      EXPECT_LE((parameters[i].grad() - expected[i]).abs().max().item<double>() / scale, relative)
          << "parameter " << i << " on rank " << group.rank();
    }
    // The features' own gradient: W times the whole-batch gradient of those rows (the averaging
    // over ranks divides parameter gradients by W).
    const at::Tensor mine = features.grad().slice(0, begin, end);
    EXPECT_LE((local.grad() / 2 - mine).abs().max().item<double>() /
                  (mine.abs().max().item<double>() + 1e-12),
              relative);
  });
}

TEST(Distributed, ClearErrorsForPortInUseAndUnreachableRankZero) {
  // A port someone else listens on.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  socklen_t length = sizeof address;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  const int taken = ntohs(address.sin_port);
  const std::string in_use = error_of([&] { ProcessGroup(rank_options(taken, 2, 0, 2)); });
  close(fd);
  EXPECT_NE(in_use.find("port " + std::to_string(taken) + " is already in use"), std::string::npos)
      << in_use;
  // Rank 1 with no rank 0 anywhere: fails after the timeout, not never.
  const auto start = std::chrono::steady_clock::now();
  const std::string unreachable =
      error_of([&] { ProcessGroup(rank_options(free_loopback_port(), 2, 1, 2)); });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(unreachable.find("cannot reach rank 0"), std::string::npos) << unreachable;
  EXPECT_LT(seconds, 15.0);
}

// Synchronised BatchNorm: 2 ranks with half a batch each normalise with the whole batch's moments,
// so outputs, averaged gradients and running statistics are one process's on the whole batch.
TEST(Distributed, SynchronisedBatchNormMatchesTheWholeBatch) {
  torch::manual_seed(7);
  const at::Tensor images = torch::randn({8, 3, 6, 6});
  const at::Tensor weights = torch::randn({8, 4, 6, 6});  // a loss that mixes the rows
  ConvBN reference(3, 4, 3, 1, Activation::kReLU);
  reference->train();
  const at::Tensor expected = reference->forward(images);
  (expected * weights).sum().backward();
  std::vector<at::Tensor> expected_grads;
  for (const auto& p : reference->parameters()) expected_grads.push_back(p.grad().clone());
  const std::vector<at::Tensor> expected_buffers = reference->buffers();

  // One process with the synchronised path and no other rank: the same as BatchNorm2d.
  ConvBN alone(3, 4, 3, 1, Activation::kReLU);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < alone->parameters().size(); ++i)
      alone->parameters()[i].copy_(reference->parameters()[i]);
  }
  EXPECT_EQ(set_statistics_gather(*alone, [](const at::Tensor& t) { return t.unsqueeze(0); }), 1);
  alone->train();
  // BatchNorm's mean and variance are sums of n = 8*6*6 terms, in another order here: y = (x -
  // mean) / sd moves by <= n*u of mean|x| / sd ~ 1 (a bias-free convolution of zero-mean images)
  // and by <= n*u / 2 of itself through the variance, plus a few roundings.
  const double n = 8 * 6 * 6, bound = n * kFloat32Unit;
  EXPECT_TRUE(torch::allclose(alone->forward(images), expected, bound, bound));

  run_ranks(2, [&](ProcessGroup& group) {
    ConvBN layer(3, 4, 3, 1, Activation::kReLU);
    if (group.rank() == 0) {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < layer->parameters().size(); ++i)
        layer->parameters()[i].copy_(reference->parameters()[i]);
    }
    broadcast_module_state(group, *layer);
    set_statistics_gather(*layer, [&](const at::Tensor& t) { return stack_over_ranks(t, group); });
    layer->train();
    const int64_t begin = group.rank() * 4;
    const at::Tensor out = layer->forward(images.slice(0, begin, begin + 4));
    EXPECT_TRUE(torch::allclose(out, expected.slice(0, begin, begin + 4), bound, bound))
        << "rank " << group.rank();
    // Each rank's loss is its rows' share; the whole loss is their sum, i.e. W x their mean.
    (2 * out * weights.slice(0, begin, begin + 4)).sum().backward();
    std::vector<at::Tensor> parameters = layer->parameters();
    GradientAverager(group, parameters).average();
    // The statistics' n-term sums, BatchNorm's backward means and the weight gradients' sums over
    // the n positions, each in another order: <= 3n*u of the largest gradient.
    for (size_t i = 0; i < parameters.size(); ++i) {
      const double scale = expected_grads[i].abs().max().item<double>();
      EXPECT_LE((parameters[i].grad() - expected_grads[i]).abs().max().item<double>(),
                3 * n * kFloat32Unit * scale)
          << "parameter " << i << " on rank " << group.rank();
    }
    // Running statistics: momentum 0.1 of the statistics' n*u (of |x| <= 1), plus each update's
    // <= 5 roundings (unbiasing, momentum, add) of values <= 1.
    const double buffer_bound = (0.1 * n + 2 * 5) * kFloat32Unit;
    const std::vector<at::Tensor> buffers = layer->buffers();
    for (size_t i = 0; i < buffers.size(); ++i)
      EXPECT_TRUE(torch::allclose(buffers[i].to(torch::kFloat64),
                                  expected_buffers[i].to(torch::kFloat64), buffer_bound,
                                  buffer_bound))
          << "buffer " << i << " on rank " << group.rank();
  });
}

namespace {

// A launcher environment for read_launch_environment: the variables of one test at a time.
std::map<std::string, std::string> g_environment;
const char* fake_getenv(const char* name) {
  const auto it = g_environment.find(name);
  return it == g_environment.end() ? nullptr : it->second.c_str();
}

}  // namespace

TEST(LaunchEnvironment, ReadsTorchrunVariables) {
  g_environment = {{"MASTER_ADDR", "10.0.0.7"}, {"MASTER_PORT", "29500"},
                   {"WORLD_SIZE", "4"},         {"RANK", "3"},
                   {"LOCAL_RANK", "1"},         {"TORCHELASTIC_USE_AGENT_STORE", "True"}};
  const amalgam::LaunchEnvironment env = amalgam::read_launch_environment(fake_getenv);
  EXPECT_TRUE(env.present());
  EXPECT_EQ(env.url, "tcp://10.0.0.7:29500");
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_TRUE(env.agent_store);
  g_environment["MASTER_ADDR"] = "fe80::1";  // an IPv6 address is bracketed in the url
  EXPECT_EQ(amalgam::read_launch_environment(fake_getenv).url, "tcp://[fe80::1]:29500");
}

TEST(LaunchEnvironment, ReadsSlurmOnlyBesideMasterAddr) {
  g_environment = {{"SLURM_NTASKS", "2"}, {"SLURM_PROCID", "1"}, {"SLURM_LOCALID", "0"}};
  EXPECT_FALSE(amalgam::read_launch_environment(fake_getenv).present());  // an allocation alone
  g_environment["MASTER_ADDR"] = "node1";
  g_environment["MASTER_PORT"] = "1234";
  const amalgam::LaunchEnvironment env = amalgam::read_launch_environment(fake_getenv);
  EXPECT_TRUE(env.present());
  EXPECT_EQ(env.world_size, 2);
  EXPECT_EQ(env.rank, 1);
  EXPECT_FALSE(env.agent_store);
}

TEST(LaunchEnvironment, RefusesIncompleteOrMalformedVariables) {
  const auto message = [] {
    try {
      amalgam::read_launch_environment(fake_getenv);
    } catch (const amalgam::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  g_environment = {{"MASTER_ADDR", "h"}, {"MASTER_PORT", "1"}, {"WORLD_SIZE", "2"}};
  EXPECT_NE(message().find("RANK (environment): unset while WORLD_SIZE is 2"), std::string::npos);
  g_environment["RANK"] = "-1";
  EXPECT_NE(message().find("expected a non-negative integer, got '-1'"), std::string::npos);
  g_environment = {{"WORLD_SIZE", "2"}, {"RANK", "0"}};
  EXPECT_NE(message().find("MASTER_ADDR (environment): unset"), std::string::npos);
  g_environment = {};
  EXPECT_FALSE(amalgam::read_launch_environment(fake_getenv).present());
}

TEST(LaunchEnvironment, NcclIsCompiledWithTheCudaLibTorch) {
  // The wheel's LibTorch has CUDA and NCCL: a CUDA run's ranks can meet over NCCL.
  EXPECT_TRUE(amalgam::nccl_compiled());
}

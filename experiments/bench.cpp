#include "experiments/bench.h"

#include <sys/resource.h>
#include <torch/serialize.h>
#include <torch/torch.h>

#include <algorithm>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "experiments/experiment.h"
#include "method/common_feature_block.h"
#include "method/losses.h"
#include "models/zoo.h"
#include "training/amalgamate.h"
#include "training/options_json.h"

namespace amalgam {
namespace {

// Best of `reps` timings of `work`, after one warm-up call.
double best_seconds(int reps, const std::function<void()>& work) {
  work();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double start = now_seconds();
    work();
    best = std::min(best, now_seconds() - start);
  }
  return best;
}

// The best GEMM and 3x3-convolution rates at `dtype`: the peak a training step can approach.
nlohmann::json measure_peak(c10::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  const auto options = torch::TensorOptions().dtype(dtype);
  const int64_t n = 2048;
  const at::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  const double gemm_s = best_seconds(3, [&] { torch::mm(a, b); });
  const double gemm = 2.0 * n * n * n / gemm_s / 1e9;
  // A large 3x3 convolution of the kind that dominates CNN training.
  const at::Tensor x = torch::randn({32, 128, 56, 56}, options),
                   w = torch::randn({128, 128, 3, 3}, options);
  const double conv_s = best_seconds(3, [&] { torch::conv2d(x, w, {}, 1, 1); });
  const double conv = 2.0 * 32 * 128 * 56 * 56 * 128 * 9 / conv_s / 1e9;
  return {
      {"gemm_2048_gflops", gemm}, {"conv3x3_gflops", conv}, {"peak_gflops", std::max(gemm, conv)}};
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;
}

// The demo's teachers (random weights: the cost of a step does not depend on them) and student.
std::vector<Teacher> bench_teachers(int64_t count, uint64_t seed) {
  const std::vector<TeacherPlan> plans = {{fashion_task("A=0-4"), zoo_spec("resnet", 16, 2)},
                                          {fashion_task("B=5-9"), zoo_spec("vgg", 24, 2)},
                                          {fashion_task("C=10-14"), zoo_spec("resnet", 16, 2)},
                                          {fashion_task("D=15-19"), zoo_spec("vgg", 24, 2)}};
  std::vector<Teacher> teachers;
  torch::manual_seed(seed);
  for (int64_t i = 0; i < count; ++i) {
    ModelSpec spec = plans[i].spec;
    spec.num_classes = plans[i].task.size();
    teachers.push_back(make_teacher(make_network(spec), plans[i].task));
  }
  return teachers;
}

AmalgamateConfig bench_options(const BenchOptions& o, Precision precision) {
  AmalgamateConfig options;
  options.train.precision = precision_name(precision);
  options.student = zoo_spec("resnet", 20, 1);
  options.objective = method_config(  // the objective bench/reference.py implements
      find_method(TargetRule::kConcatenated, FeatureTerm::kCommonSpace));
  options.train.epochs = o.epochs;
  options.train.batch_size = o.batch_size;
  options.train.threads = o.threads;
  return options;
}

void add_state(c10::Dict<std::string, at::Tensor>& dict, const std::string& prefix,
               const torch::nn::Module& module) {
  for (const auto& p : module.named_parameters(true))
    dict.insert(prefix + p.key(), p.value().detach().clone());
  for (const auto& b : module.named_buffers(true)) dict.insert(prefix + b.key(), b.value().clone());
}

// One timed run: seconds to cache the teachers' outputs, then per-epoch seconds.
struct TimedRun {
  double cache_seconds = 0;
  std::vector<double> epoch_seconds;
  double images_per_second = 0;
};

TimedRun timed_run(const std::vector<Teacher>& teachers, const TransferSet& transfer,
                   const AmalgamateConfig& options, bool cache_teachers,
                   const TrainingHooks& hooks = {}) {
  TimedRun run;
  TeacherOutputCache cache;
  if (cache_teachers) {
    const double start = now_seconds();
    cache = cache_teacher_outputs(teachers, transfer.images(), kInferenceBatch, at::kCPU,
                                  parse_precision(options.train.precision, at::kCPU));
    run.cache_seconds = now_seconds() - start;
  }
  AmalgamateConfig o = options;
  o.cache_teachers = cache_teachers;
  RunContext context;
  context.cache = cache_teachers ? &cache : nullptr;
  context.hooks = hooks;
  const AmalgamationResult result = amalgamate(teachers, transfer, o, context);
  double images = 0;
  for (const auto& e : result.history) {
    run.epoch_seconds.push_back(e.seconds);
    images += e.images_per_second * e.seconds;
  }
  double total = 0;
  for (double s : run.epoch_seconds) total += s;
  run.images_per_second = images / total;
  return run;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / v.size();
}

nlohmann::json run_record(const TimedRun& run, int64_t epochs, int64_t steps_per_epoch) {
  return {{"cache_seconds", run.cache_seconds},
          {"epoch_seconds", run.epoch_seconds},
          {"steady_epoch_s", mean(run.epoch_seconds)},
          {"amalgam_epoch_s", mean(run.epoch_seconds) + run.cache_seconds / epochs},
          {"images_per_second", run.images_per_second},
          {"steps_per_epoch", steps_per_epoch},
          {"peak_rss_mib", peak_rss_mib()}};
}

}  // namespace

nlohmann::json run_bench(const BenchOptions& o) {
  AMALGAM_CHECK(o.images >= 2 * o.batch_size, "--images: need at least two batches");
  AMALGAM_CHECK(o.epochs > 0, "--epochs: must be > 0");
  AMALGAM_CHECK(o.check_steps >= 0, "--check-steps: must be >= 0");
  const int threads = configure_threads(o.threads);
  const Precision precision = parse_precision(o.precision, at::kCPU);
  nlohmann::json out = {{"threads", threads},
                        {"images", o.images},
                        {"epochs", o.epochs},
                        {"batch_size", o.batch_size},
                        {"precision", precision_name(precision)}};
  log_info("bench: measuring the FP32 peak (2048^3 GEMM, 3x3 convolution)");
  out["peak"] = measure_peak(torch::kFloat32);
  if (precision == Precision::kBf16) {
    log_info("bench: measuring the bf16 peak");
    out["peak_bf16"] = measure_peak(torch::kBFloat16);
  }

  const LabeledImages train = load_idx_split(o.data_dir, "train");
  const TransferSet transfer(train.images.slice(0, 0, std::min(o.images, train.size())).clone());
  const AmalgamateConfig options = bench_options(o, precision);
  const AmalgamateConfig fp32_options = bench_options(o, Precision::kFp32);
  const std::vector<Teacher> teachers = bench_teachers(2, 0);

  // The FP32 run records the first steps the reference must reproduce bitwise (same kernels).
  c10::Dict<std::string, at::Tensor> state;
  nlohmann::json check = nlohmann::json::array();
  std::vector<at::Tensor> check_indices;
  TrainingHooks hooks;
  hooks.on_start = [&](NetworkImpl& student, ObjectiveImpl& objective) {
    add_state(state, "student.", student);
    add_state(state, "block.", *objective.common_space());
  };
  int64_t steps_per_epoch = 0;
  hooks.on_step = [&](const StepRecord& r) {
    steps_per_epoch = r.steps_per_epoch;
    if (r.global_step >= o.check_steps) return;
    nlohmann::json step = r.loss;
    step["lrs"] = r.lrs;
    check.push_back(step);
    check_indices.push_back(r.indices);
  };
  log_info("bench: amalgam CFL at fp32, " + std::to_string(o.epochs) + " epochs on " +
           std::to_string(transfer.size()) + " images");
  const TimedRun fp32 = timed_run(teachers, transfer, fp32_options, true, hooks);
  out["amalgam_fp32"] = run_record(fp32, o.epochs, steps_per_epoch);
  out["check_steps"] = check;
  if (precision == Precision::kFp32) {
    out["amalgam"] = out["amalgam_fp32"];
  } else {
    // Same initial weights and batches (same seed): its first steps' terms against FP32's.
    TrainingHooks reduced;
    reduced.on_step = [&](const StepRecord& r) {
      if (r.global_step < o.check_steps) out["check_steps_reduced"].push_back(r.loss);
    };
    log_info(std::string("bench: amalgam CFL at ") + precision_name(precision));
    out["amalgam"] = run_record(timed_run(teachers, transfer, options, true, reduced), o.epochs,
                                steps_per_epoch);
  }

  if (o.levers) {
    log_info(std::string("bench: levers at ") + precision_name(precision) +
             ": teachers run on every batch (no cache)");
    AmalgamateConfig one = options;
    one.train.epochs = 1;
    out["levers"]["no_teacher_cache_epoch_s"] =
        timed_run(teachers, transfer, one, false).epoch_seconds.front();
    log_info("bench: lever: channels-last layout");
    AmalgamateConfig nhwc = one;
    nhwc.channels_last = true;
    out["levers"]["channels_last_epoch_s"] =
        timed_run(teachers, transfer, nhwc, true).epoch_seconds.front();
    log_info("bench: lever: one thread");
    configure_threads(1);
    out["levers"]["one_thread_epoch_s"] =
        timed_run(teachers, transfer, one, true).epoch_seconds.front();
    configure_threads(o.threads);
  }
  if (o.scaling) {
    AmalgamateConfig one = options;
    one.train.epochs = 1;
    for (int64_t n : {2500, 5000, 10000, 20000}) {
      if (n > train.size()) continue;
      log_info("bench: scaling, " + std::to_string(n) + " images");
      const TransferSet part(train.images.slice(0, 0, n).clone());
      const TimedRun r = timed_run(teachers, part, one, true);
      out["scaling"]["images"].push_back(
          {{"images", n}, {"cache_s", r.cache_seconds}, {"epoch_s", r.epoch_seconds.front()}});
    }
    for (int64_t k = 1; k <= 4; ++k) {
      log_info("bench: scaling, " + std::to_string(k) + " teacher(s)");
      const TimedRun r = timed_run(bench_teachers(k, 0), transfer, one, true);
      out["scaling"]["teachers"].push_back(
          {{"teachers", k}, {"cache_s", r.cache_seconds}, {"epoch_s", r.epoch_seconds.front()}});
    }
  }

  if (!o.state_path.empty()) {
    for (size_t i = 0; i < teachers.size(); ++i)
      add_state(state, "teacher" + std::to_string(i) + ".", *teachers[i].network);
    state.insert("transfer_images", transfer.images());
    if (!check_indices.empty()) state.insert("check_indices", torch::stack(check_indices));
    const std::vector<char> bytes = torch::pickle_save(state);
    write_bytes_atomically(o.state_path, std::string(bytes.begin(), bytes.end()));
    const AmalgamateConfig& a = options;
    const CommonSpaceOptions& space = *a.objective.common_space;
    ModelSpec student = a.student;
    student.num_classes = 0;
    for (const auto& t : teachers) student.num_classes += t.task.size();
    nlohmann::json config = {
        {"student", student},
        {"teacher_specs", nlohmann::json::array()},
        {"common_channels", space.channels},
        {"extractor_blocks", space.extractor_blocks},
        {"lr", a.train.lr},
        {"head_lr_mult", a.train.head_lr_mult},
        {"block_lr_mult", a.train.block_lr_mult},
        {"weight_decay", a.train.weight_decay},
        {"temperature", a.objective.temperature},
        {"lambda_kd", a.objective.lambda_kd},
        {"lambda_cf", space.weight},
        {"beta", space.beta},
        {"channels_last", a.channels_last},
        {"sigmas", space.sigmas.empty() ? default_mmd_sigmas() : space.sigmas}};
    for (const auto& t : teachers)
      config["teacher_specs"].push_back(dynamic_cast<ZooNetworkImpl&>(*t.network).spec());
    out["config"] = config;
  }
  return out;
}

}  // namespace amalgam

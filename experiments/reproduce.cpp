#include "experiments/reproduce.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/names.h"
#include "core/runtime.h"
#include "evaluation/evaluate.h"
#include "evaluation/linear_probe.h"
#include "evaluation/paired_difference.h"
#include "experiments/experiment.h"
#include "method/common_feature_block.h"
#include "models/checkpoint.h"
#include "models/export.h"
#include "reporting/report.h"
#include "reporting/table.h"
#include "routing/routing_check.h"
#include "training/amalgamate.h"
#include "training/options_json.h"
#include "training/teach.h"

namespace amalgam {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Sizes of one protocol; the full one matches the demo, whose choices were made on validation.
struct Preset {
  int64_t val_size = 5000;
  int64_t train_limit = 0;
  int64_t test_limit = 0;
  int64_t teacher_epochs = 4;
  int64_t student_epochs = 5;
  int64_t teacher_width = 16;
  int64_t student_width = 20;
  int64_t batch_size = 128;
};

Preset preset_for(const ReproduceOptions& o) {
  Preset p;
  if (o.quick) p = {1000, 4000, 1000, 4, 3, 8, 8, 64};
  if (o.train_limit >= 0) p.train_limit = o.train_limit;
  if (o.student_epochs > 0) p.student_epochs = o.student_epochs;
  return p;
}

struct BenchmarkPlan {
  std::string name;
  std::vector<TeacherPlan> teachers;
  bool cross_domain = false;  // digits + clothing (cross_domain_data), else Fashion-MNIST alone
  // Teachers handed over as users hand theirs: TorchScript files with a sidecar, loaded back
  // through the TorchScript path at their feature layer.
  bool torchscript = false;
  int64_t transfer_images = 0;  // transfer images kept (0: every training image)
  int64_t student_epochs = 0;   // epochs of every student (0: the preset's; --epochs wins)
};

// The digits of the cross-domain set-up: 1,197 training images, 10 steps an epoch at batch 128;
// 30 epochs give the digits teacher about as many steps as the Fashion teachers' 4 epochs of 10k.
constexpr int64_t kDigitsTeacherEpochs = 30;
// Fashion images per digit image in every split of the cross-domain set-up: a quarter digits.
constexpr int64_t kClothingPerDigit = 3;

// The small-data set-up, as users arrive: teachers that read 3x32x32 RGB normalised by their
// own statistics (torchvision's habit), a transfer set of 3,000 images and 3 student epochs.
constexpr int64_t kSmallTransferImages = 3000;
constexpr int64_t kSmallStudentEpochs = 3;

ModelSpec rgb32(ModelSpec spec) {
  spec.input = {3, 32, 32, {0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  return spec;
}

TaskSpec digits_task() {
  TaskSpec task = parse_task("digits=10-19");
  for (int d = 0; d < 10; ++d) task.class_names.push_back(std::to_string(d));
  return task;
}

std::vector<BenchmarkPlan> benchmark_plans(const Preset& p) {
  const int64_t w = p.teacher_width;
  return {{"fmnist-2",
           {{fashion_task("A=0-4"), zoo_spec("resnet", w, 2)},
            {fashion_task("B=5-9"), zoo_spec("vgg", w * 3 / 2, 2)}}},
          {"fmnist-3",
           {{fashion_task("A=0-3"), zoo_spec("resnet", w, 2)},
            {fashion_task("B=4-6"), zoo_spec("vgg", w * 3 / 2, 2)},
            {fashion_task("C=7-9"), zoo_spec("mobilenetv2", w, 2)}}},
          {"cross-domain",
           {{digits_task(), zoo_spec("vgg", w * 3 / 2, 2), kDigitsTeacherEpochs},
            {fashion_task("clothing=0-9"), zoo_spec("resnet", w, 2)}},
           true},
          {"small-rgb",
           {{fashion_task("A=0-4"), rgb32(zoo_spec("resnet", w, 2))},
            {fashion_task("B=5-9"), rgb32(zoo_spec("mobilenetv2", w, 2))}},
           false,
           true,
           kSmallTransferImages,
           kSmallStudentEpochs}};
}

// A trained teacher as a user's file: our TorchScript export (its forward normalises), a
// sidecar naming its task, classes and geometry, and the file loaded back at its feature map.
Teacher reload_as_torchscript(const Teacher& trained, const std::string& path, c10::Device device) {
  export_torchscript(*trained.network, path, nlohmann::json::object());
  const InputSpec& in = trained.network->input();
  const nlohmann::json sidecar = {{"task", trained.task.name},
                                  {"class_names", trained.task.class_names},
                                  {"channels", in.channels},
                                  {"input_size", {in.height, in.width}},
                                  {"mean", 0.0},
                                  {"std", 1.0}};
  // In place of the export's own sidecar: a user's file says only what the TorchScript path reads.
  write_text_atomically(sidecar_path(path), sidecar.dump(2) + "\n");
  Teacher teacher = load_teacher(path + ":body", device);
  teacher.task = trained.task;  // the file's classes count from 0; the benchmark's ids are kept
  return teacher;
}

TrainOptions train_options(const ReproduceOptions& o, const Preset& p, int64_t epochs,
                           uint64_t seed) {
  TrainOptions t;
  t.epochs = epochs;
  t.batch_size = p.batch_size;
  t.seed = seed;
  t.threads = o.threads;
  t.device = o.device;
  return t;
}

// Finds or appends the row called `name`, run under --rows key `key`.
ReproduceRow& row(std::vector<ReproduceRow>& rows, const std::string& key, const std::string& name,
                  const std::string& description) {
  for (auto& r : rows)
    if (r.name == name) return r;
  rows.push_back({key, name, description, {}, {}, {}, {}, 0, 0});
  return rows.back();
}

// The `single` rows: one student per teacher, from that teacher alone, on `transfer`, each
// trained for `steps` steps with `base`'s other settings; their task accuracies are one seed of
// `single`.
void train_single_students(ReproduceRow& single, const std::vector<Teacher>& teachers,
                           const TeacherOutputCache& cache, const TransferSet& transfer,
                           AmalgamateConfig base, int64_t steps, const LabeledImages& scored,
                           int64_t seeds) {
  base.train.steps = steps;
  std::vector<double> accs(teachers.size(), kNaN);
  double seconds = 0;
  for (size_t i = 0; i < teachers.size(); ++i) {
    const TeacherOutputCache one{{cache.outputs[i]}};
    RunContext context;
    context.cache = &one;
    const AmalgamationResult r = amalgamate({teachers[i]}, transfer, base, context);
    accs[i] = evaluate_student(*r.student, r.head, scored, kInferenceBatch).task_accuracy[0];
    single.params = count_parameters(*r.student);
    seconds += r.seconds;
  }
  single.task_acc.push_back(accs);
  single.seconds += seconds / static_cast<double>(seeds);
}

void record(ReproduceRow& r, const StudentScores& scores, int64_t params, double seconds,
            int64_t seeds) {
  r.task_acc.push_back(scores.task_accuracy);
  r.union_acc.push_back(scores.union_accuracy);
  r.routing_acc.push_back(scores.routing_accuracy);
  r.oracle_union_acc.push_back(scores.oracle_union_accuracy);
  r.params = params;
  r.seconds += seconds / static_cast<double>(seeds);
}

// Flattened features of `images` for a linear probe: the student's and teacher i's common
// features, and teacher i's raw feature map.
std::array<at::Tensor, 3> probe_features(NetworkImpl& student, CommonFeatureBlockImpl& block,
                                         const Teacher& teacher, size_t index,
                                         const at::Tensor& images, c10::Device device) {
  torch::NoGradGuard no_grad;
  student.eval();
  block.eval();
  std::vector<at::Tensor> hs, hi, fi;
  for (int64_t begin = 0; begin < images.size(0); begin += kInferenceBatch) {
    const at::Tensor x = to_network_input(images.slice(0, begin, begin + kInferenceBatch), device);
    const ModelOutput t = teacher_outputs({teacher}, x).front();
    hs.push_back(block.student_common(student.forward(x).features).flatten(1).cpu());
    hi.push_back(block.teacher_common(index, t.features).flatten(1).cpu());
    fi.push_back(t.features.flatten(1).cpu());
  }
  return {torch::cat(hs), torch::cat(hi), torch::cat(fi)};
}

// One amalgamated row: a key for --rows, and its objective.
struct Variant {
  std::string key, name, description;
  ObjectiveConfig objective;
  bool probes = false;  ///< seed 0 probes its common space (--probes)
};

// A row per method (keyed by its name), then the ablations and controls of the paper's objective
// (cfl-*) and of the default (routed-kd-*).
std::vector<Variant> make_variants() {
  std::vector<Variant> rows;
  for (const auto& method : methods()) {
    const bool is_default = std::string(method.name) == kDefaultMethod;
    rows.push_back({method.name, is_default ? kDefaultStudentRow : method.name,
                    std::string(target_rule_name(method.targets)) + " targets, " +
                        feature_term_name(method.features) + " feature term",
                    method_config(method)});
  }
  const MethodInfo& paper = find_method(TargetRule::kConcatenated, FeatureTerm::kCommonSpace);
  const MethodInfo& routed = find_method(kDefaultMethod);
  for (auto& row : rows) row.probes = row.key == paper.name;
  const auto variant = [&](const MethodInfo& method, const std::string& suffix,
                           const std::string& description, auto&& change) {
    Variant row{method.name + std::string("-") + suffix, method.name + std::string(", ") + suffix,
                description, method_config(method)};
    change(row.objective);
    rows.push_back(row);
  };
  variant(paper, "no-mmd", "ablation: --no-mmd",
          [](ObjectiveConfig& c) { c.common_space->use_mmd = false; });
  variant(paper, "no-recon", "ablation: --no-reconstruction",
          [](ObjectiveConfig& c) { c.common_space->use_reconstruction = false; });
  variant(paper, "fixed-space", "control: --fixed-common-space (align layers, extractor fixed)",
          [](ObjectiveConfig& c) { c.common_space->fixed = true; });
  variant(routed, "teachers", "ablation: --routing teachers",
          [](ObjectiveConfig& c) { c.routing->rule = RoutingRule::kTeachers; });
  variant(routed, "uniform",
          "every teacher within its slice on every image: --slice-weights uniform",
          [](ObjectiveConfig& c) { c.routing->slice_weights = SliceWeights::kUniform; });
  return rows;
}

const std::vector<Variant>& variants() {
  static const std::vector<Variant> table = make_variants();
  return table;
}

BenchmarkResult run_benchmark(const BenchmarkPlan& plan, const ExperimentData& data,
                              const Preset& preset, const ReproduceOptions& o) {
  const double start = now_seconds();
  const c10::Device device = parse_device(o.device);
  BenchmarkResult result;
  result.name = plan.name;
  // What every row is scored on: the test split, or validation when settings are being chosen.
  const LabeledImages& scored = o.split == "val" ? data.split.val : data.test;
  std::vector<Teacher> teachers;
  double teacher_seconds = 0;
  for (const auto& t : plan.teachers) {
    result.tasks.push_back(t.task);
    result.arch.push_back(t.spec.arch);
    const int64_t epochs = t.epochs > 0 ? t.epochs : preset.teacher_epochs;
    const std::string source = plan.cross_domain ? o.data_dir + " + " + o.digits_path : o.data_dir;
    const std::string stem = o.out_dir + "/" + plan.name + "/teachers/" + t.task.name;
    const Teacher trained =
        obtain_teacher(t, data.teacher_data(), stem + ".pt", train_options(o, preset, epochs, 0),
                       source, false, &teacher_seconds);
    teachers.push_back(plan.torchscript
                           ? reload_as_torchscript(trained, stem + ".torchscript.pt", device)
                           : trained);
  }
  HeadLayout head;
  for (const auto& t : teachers) head.tasks.push_back(t.task);
  const size_t n = teachers.size();

  ReproduceRow& teacher_row =
      row(result.rows, "", "Teachers", "each teacher on its own task; union: their ensemble");
  std::vector<double> own;
  int64_t teacher_params = 0;
  for (const auto& t : teachers) {
    own.push_back(evaluate_teacher(t, scored, kInferenceBatch));
    teacher_params += count_parameters(*t.network);
  }
  teacher_row.task_acc.push_back(own);
  const TeacherRoutingScores routing =
      evaluate_teacher_routing(teachers, scored, RoutingOptions{}, kInferenceBatch);
  teacher_row.union_acc.push_back(routing.concatenated);
  teacher_row.routing_acc.push_back(routing.concatenated_routing);
  teacher_row.oracle_union_acc.push_back(routing.oracle);
  teacher_row.params = teacher_params;
  teacher_row.seconds = teacher_seconds;
  ReproduceRow& calibrated = row(result.rows, "", "Teachers, calibrated routing",
                                 "their union with P(task) from calibrated energy scores");
  calibrated.union_acc.push_back(routing.calibrated);
  calibrated.routing_acc.push_back(routing.calibrated_routing);

  // The transfer set; only the supervised reference row sees its labels.
  const LabeledImages transfer_labeled = plan.transfer_images > 0
                                             ? subsample(data.split.train, plan.transfer_images, 0)
                                             : data.split.train;
  const TransferSet transfer = strip_labels(transfer_labeled);
  const int64_t student_epochs = plan.student_epochs > 0 && o.student_epochs <= 0
                                     ? plan.student_epochs
                                     : preset.student_epochs;
  const TeacherOutputCache cache =
      cache_teacher_outputs(teachers, transfer.images(), kInferenceBatch, device);
  ModelSpec student = zoo_spec("resnet", preset.student_width, 1);
  student.input = transfer_input(teachers);  // as amalgamate builds it; the supervised row too

  const auto wanted = [&](const std::string& key) {
    return o.rows.empty() || std::find(o.rows.begin(), o.rows.end(), key) != o.rows.end();
  };
  std::map<std::string, RoutingCheck> routing_checks;  // by routing options: seeds share them
  for (int64_t seed = 0; seed < o.seeds; ++seed) {
    log_info(plan.name + ": seed " + std::to_string(seed + 1) + "/" + std::to_string(o.seeds));
    TrainOptions train = train_options(o, preset, student_epochs, static_cast<uint64_t>(seed));
    train.augment = o.student_augment;
    if (wanted("supervised")) {  // The only row that sees labels.
      TaskSpec union_task;
      union_task.name = "union";
      union_task.classes = head.class_ids();
      const double t0 = now_seconds();
      TrainOptions teaching = train;  // as every teacher of docs/results.md: one rate, head too
      teaching.head_lr_mult = teach_defaults().head_lr_mult;
      teaching.augment = {};
      const TeachResult supervised =
          teach(student, union_task, select_task(transfer_labeled, union_task), {}, teaching);
      const double seconds = now_seconds() - t0;
      record(row(result.rows, "supervised", "Supervised on labels",
                 "reference: trained on the labeled union"),
             evaluate_student(*supervised.network, head, scored, kInferenceBatch),
             count_parameters(*supervised.network), seconds, o.seeds);
    }
    // Every amalgamated row shares these; rows differ only in method and ablation switches.
    AmalgamateConfig base;
    base.student = student;
    base.train = train;
    for (const auto& v : variants()) {
      if (!wanted(v.key)) continue;
      AmalgamateConfig options = base;
      options.objective = v.objective;
      const std::string key = nlohmann::json(options.objective).dump();
      if (!routing_checks.count(key))
        routing_checks[key] = settle_routing(teachers, data.split.val, options.objective.routing,
                                             plan.name + ", " + v.key);
      else
        apply_routing_check(routing_checks[key], options.objective.routing);
      RunContext context;
      context.cache = &cache;
      AmalgamationResult r = amalgamate(teachers, transfer, options, context);
      record(row(result.rows, v.key, v.name, v.description),
             evaluate_student(*r.student, r.head, scored, kInferenceBatch),
             count_parameters(*r.student), r.seconds, o.seeds);
      CommonFeatureBlockImpl* block = r.objective->common_space();
      if (v.probes && seed == 0 && block != nullptr && o.probes) {
        for (size_t i = 0; i < n; ++i) {
          const LabeledImages val_i = select_task(data.split.val, teachers[i].task);
          const LabeledImages test_i = select_task(data.test, teachers[i].task);
          const auto a = probe_features(*r.student, *block, teachers[i], i, val_i.images, device);
          const auto b = probe_features(*r.student, *block, teachers[i], i, test_i.images, device);
          const int64_t k = teachers[i].task.size();
          ProbeRow probe;
          probe.task = teachers[i].task.name;
          probe.student_common = linear_probe_accuracy(a[0], val_i.labels, b[0], test_i.labels, k);
          probe.teacher_common = linear_probe_accuracy(a[1], val_i.labels, b[1], test_i.labels, k);
          probe.teacher_raw = linear_probe_accuracy(a[2], val_i.labels, b[2], test_i.labels, k);
          result.probes.push_back(probe);
        }
      }
    }
    // One student per teacher, from that teacher alone, on the same transfer set: with the
    // amalgamated student's steps (the capacity cost of amalgamating), and with its steps shared
    // out over the tasks, so the single students together take what it took (the step cost).
    TrainOptions amalgamated = base.train;
    amalgamated.epochs = epochs_for(base.train, transfer.size());
    const int64_t amalgamated_steps =
        total_steps(amalgamated, std::max<int64_t>(1, transfer.size() / base.train.batch_size));
    if (wanted("single"))
      train_single_students(
          row(result.rows, "single", "Default student from that teacher alone",
              "control: one student per task, same transfer set and steps as the amalgamated"),
          teachers, cache, transfer, base, amalgamated_steps, scored, o.seeds);
    if (wanted("single-per-task"))
      train_single_students(
          row(result.rows, "single-per-task", "The same with its share of the steps",
              "control: one student per task, the amalgamated student's steps / tasks each"),
          teachers, cache, transfer, base,
          std::max<int64_t>(1, amalgamated_steps / static_cast<int64_t>(n)), scored, o.seeds);
  }
  result.seconds = now_seconds() - start;
  return result;
}

}  // namespace

std::string kd_row_key() {
  return find_method(TargetRule::kConcatenated, FeatureTerm::kNone).name;
}

ReproduceResult run_reproduce(const ReproduceOptions& o) {
  AMALGAM_CHECK(o.seeds > 0, "--seeds: must be > 0");
  AMALGAM_CHECK(o.split == "test" || o.split == "val",
                "--split: expected test or val, got '" + o.split + "'");
  for (const auto& key : o.rows) {
    std::vector<std::string> keys = {"supervised"};
    for (const auto& v : variants()) keys.push_back(v.key);
    keys.push_back("single");
    keys.push_back("single-per-task");
    if (std::find(keys.begin(), keys.end(), key) == keys.end())
      throw Error(unknown_choice("--rows", key, keys));
  }
  const int threads = configure_threads(o.threads);
  const Preset preset = preset_for(o);
  const double start = now_seconds();
  ReproduceResult result;
  result.settings = {
      {"val_size", preset.val_size},
      {"train_limit", preset.train_limit},
      {"test_limit", preset.test_limit},
      {"teacher_epochs", preset.teacher_epochs},
      {"student_epochs", preset.student_epochs},
      {"batch_size", preset.batch_size},
      {"teacher_width", preset.teacher_width},
      {"student", zoo_spec("resnet", preset.student_width, 1).arch + " width " +
                      std::to_string(preset.student_width) + " depth 1"},
      {"objective", ObjectiveConfig{}},
      {"student_augment", o.student_augment},
      {"cross_domain",
       {{"digits", o.digits_path},
        {"digits_val", DigitsHoldOut{}.val},
        {"digits_test", DigitsHoldOut{}.test},
        {"clothing_per_digit", kClothingPerDigit},
        {"digits_teacher_epochs", kDigitsTeacherEpochs}}},
      {"small_rgb",
       {{"teacher_input", "3x32x32 RGB, mean 0.5, std 0.25"},
        {"teachers", "TorchScript exports with sidecars, loaded at :body"},
        {"transfer_images", kSmallTransferImages},
        {"student_epochs", o.student_epochs > 0 ? o.student_epochs : kSmallStudentEpochs}}},
      {"seeds", o.seeds},
      {"split", o.split},
      {"threads", threads},
      {"quick", o.quick}};
  // Every input is checked before the first benchmark runs: a bad name or a missing digits
  // table must not cost the minutes of the benchmarks before it.
  std::vector<BenchmarkPlan> plans;
  for (const auto& plan : benchmark_plans(preset))
    if (o.benchmarks.empty() ||
        std::find(o.benchmarks.begin(), o.benchmarks.end(), plan.name) != o.benchmarks.end())
      plans.push_back(plan);
  for (const auto& name : o.benchmarks)
    AMALGAM_CHECK(std::any_of(plans.begin(), plans.end(),
                              [&](const BenchmarkPlan& p) { return p.name == name; }),
                  "--benchmark: no benchmark called '" + name +
                      "' (fmnist-2, fmnist-3, cross-domain, small-rgb)");
  const ExperimentData data =
      load_experiment_data(o.data_dir, preset.val_size, preset.train_limit, preset.test_limit, 0);
  LabeledImages digits;
  if (std::any_of(plans.begin(), plans.end(),
                  [](const BenchmarkPlan& p) { return p.cross_domain; }))
    digits = load_digits_csv(o.digits_path, data.test.images.size(2), 10);
  for (const auto& plan : plans)
    result.benchmarks.push_back(
        plan.cross_domain
            ? run_benchmark(plan,
                            cross_domain_data(data, digits, DigitsHoldOut{}, kClothingPerDigit),
                            preset, o)
            : run_benchmark(plan, data, preset, o));
  result.seconds = now_seconds() - start;
  if (!o.json_path.empty())
    write_text_atomically(o.json_path, reproduce_json(result).dump(2) + "\n");
  if (!o.markdown_path.empty()) write_text_atomically(o.markdown_path, format_reproduce(result));
  ensure_directory(o.out_dir);
  write_text_atomically(o.out_dir + "/report.html",
                        render_reproduce_report(reproduce_json(result)));
  log_info("reproduce: report -> " + o.out_dir + "/report.html");
  return result;
}

}  // namespace amalgam

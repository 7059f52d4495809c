#include "app/reproduce.h"

#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>

#include "app/experiment.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/runtime.h"
#include "evaluation/evaluate.h"
#include "evaluation/linear_probe.h"
#include "evaluation/paired_difference.h"
#include "method/common_feature_block.h"
#include "reporting/report.h"
#include "reporting/table.h"
#include "training/amalgamate.h"
#include "training/routing_check.h"
#include "training/teach.h"

namespace amalgam {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// The default student's row.
constexpr const char* kDefaultRow = "CFL (default: expertise-aware)";

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
};

// The digits of the cross-domain set-up: 1,197 training images, 10 steps an epoch at batch 128;
// 30 epochs give the digits teacher about as many steps as the Fashion teachers' 4 epochs of 10k.
constexpr int64_t kDigitsTeacherEpochs = 30;
// Fashion images per digit image in every split of the cross-domain set-up: a quarter digits.
constexpr int64_t kClothingPerDigit = 3;

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
           true}};
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

// Finds or appends the row called `name`.
ReproduceRow& row(std::vector<ReproduceRow>& rows, const std::string& name,
                  const std::string& description) {
  for (auto& r : rows)
    if (r.name == name) return r;
  rows.push_back({name, description, {}, {}, {}, {}, 0, 0});
  return rows.back();
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

// One amalgamated row: a key for --rows, and how it sets the objective.
struct Variant {
  std::string key, name, description;
  std::function<void(ObjectiveConfig&)> configure;
};

const std::vector<Variant>& variants() {
  static const std::vector<Variant> table = {
      {"kd", "KD", "soft targets only", [](ObjectiveConfig& c) { c.method = "kd"; }},
      {"fitnet", "FitNet hints + KD", "student feature regressed onto each teacher's by an adapter",
       [](ObjectiveConfig& c) { c.method = "fitnet"; }},
      {"cfl-paper", "CFL, paper objective", "concatenated soft targets + MMD + reconstruction",
       [](ObjectiveConfig& c) { c.method = "cfl-paper"; }},
      {"cfl-paper-no-mmd", "CFL (paper) without MMD", "ablation",
       [](ObjectiveConfig& c) {
         c.method = "cfl-paper";
         c.use_mmd = false;
       }},
      {"cfl-paper-no-recon", "CFL (paper) without reconstruction", "ablation",
       [](ObjectiveConfig& c) {
         c.method = "cfl-paper";
         c.use_reconstruction = false;
       }},
      {"cfl-paper-fixed-space", "CFL (paper), fixed random common space",
       "control: align layers and extractor never trained",
       [](ObjectiveConfig& c) {
         c.method = "cfl-paper";
         c.fixed_common_space = true;
       }},
      {"cfl", kDefaultRow, "routed soft targets and the head's task gate",
       [](ObjectiveConfig& c) { c.method = "cfl"; }},
      {"cfl-common-space", "CFL (default) + common space, λ_cf 1",
       "the default with the responsibility-weighted common-space terms",
       [](ObjectiveConfig& c) {
         c.method = "cfl";
         c.lambda_cf = 1.0;
       }},
      {"cfl-teachers-routing", "CFL (default), routing by the teachers only",
       "ablation: --routing teachers",
       [](ObjectiveConfig& c) { c.routing.rule = RoutingRule::kTeachers; }}};
  return table;
}

BenchmarkResult run_benchmark(const BenchmarkPlan& plan, const ExperimentData& data,
                              const Preset& preset, const ReproduceOptions& o) {
  const double start = now_seconds();
  const c10::Device device = parse_device(o.device);
  BenchmarkResult result;
  result.name = plan.name;
  std::vector<Teacher> teachers;
  double teacher_seconds = 0;
  for (const auto& t : plan.teachers) {
    result.tasks.push_back(t.task);
    result.arch.push_back(t.spec.arch);
    const int64_t epochs = t.epochs > 0 ? t.epochs : preset.teacher_epochs;
    const std::string source = plan.cross_domain ? o.data_dir + " + " + o.digits_path : o.data_dir;
    teachers.push_back(obtain_teacher(
        t, data.teacher_data(), o.out_dir + "/" + plan.name + "/teachers/" + t.task.name + ".pt",
        train_options(o, preset, epochs, 0), source, false, &teacher_seconds));
  }
  HeadLayout head;
  for (const auto& t : teachers) head.tasks.push_back(t.task);
  const size_t n = teachers.size();

  ReproduceRow& teacher_row =
      row(result.rows, "Teachers", "each teacher on its own task; union: their ensemble");
  std::vector<double> own;
  int64_t teacher_params = 0;
  for (const auto& t : teachers) {
    own.push_back(evaluate_teacher(t, data.test, kInferenceBatch));
    teacher_params += count_parameters(*t.network);
  }
  teacher_row.task_acc.push_back(own);
  const TeacherRoutingScores routing =
      evaluate_teacher_routing(teachers, data.test, RoutingOptions{}, kInferenceBatch);
  teacher_row.union_acc.push_back(routing.concatenated);
  teacher_row.routing_acc.push_back(routing.concatenated_routing);
  teacher_row.oracle_union_acc.push_back(routing.oracle);
  teacher_row.params = teacher_params;
  teacher_row.seconds = teacher_seconds;
  ReproduceRow& calibrated = row(result.rows, "Teachers, calibrated routing",
                                 "their union with P(task) from calibrated energy scores");
  calibrated.union_acc.push_back(routing.calibrated);
  calibrated.routing_acc.push_back(routing.calibrated_routing);

  const TransferSet transfer = strip_labels(data.split.train);
  const TeacherOutputCache cache =
      cache_teacher_outputs(teachers, transfer.images(), kInferenceBatch, device);
  const ModelSpec student = zoo_spec("resnet", preset.student_width, 1);

  const auto wanted = [&](const std::string& key) {
    return o.rows.empty() || std::find(o.rows.begin(), o.rows.end(), key) != o.rows.end();
  };
  std::map<std::string, RoutingCheck> routing_checks;  // by routing options: seeds share them
  for (int64_t seed = 0; seed < o.seeds; ++seed) {
    log_info(plan.name + ": seed " + std::to_string(seed + 1) + "/" + std::to_string(o.seeds));
    const TrainOptions train =
        train_options(o, preset, preset.student_epochs, static_cast<uint64_t>(seed));
    if (wanted("supervised")) {  // The only row that sees labels.
      TaskSpec union_task;
      union_task.name = "union";
      union_task.classes = head.class_ids();
      const double t0 = now_seconds();
      const TeachResult supervised =
          teach(student, union_task, select_task(data.split.train, union_task), {}, train);
      const double seconds = now_seconds() - t0;
      record(row(result.rows, "Supervised on labels", "reference: trained on the labeled union"),
             evaluate_student(*supervised.network, head, data.test, kInferenceBatch),
             count_parameters(*supervised.network), seconds, o.seeds);
    }
    // Every amalgamated row shares these; rows differ only in method and ablation switches.
    AmalgamateConfig base;
    base.student = student;
    base.train = train;
    for (const auto& v : variants()) {
      if (!wanted(v.key)) continue;
      AmalgamateConfig options = base;
      v.configure(options.objective);
      const std::string key = nlohmann::json(options.objective).dump();
      if (!routing_checks.count(key)) {
        routing_checks[key] = check_routing(teachers, data.split.val, options.objective);
        log_info(plan.name + ", " + v.key + ": " + describe(routing_checks[key]));
      }
      apply(routing_checks[key], options.objective);
      RunContext context;
      context.cache = &cache;
      AmalgamationResult r = amalgamate(teachers, transfer, options, context);
      record(row(result.rows, v.name, v.description),
             evaluate_student(*r.student, r.head, data.test, kInferenceBatch),
             count_parameters(*r.student), r.seconds, o.seeds);
      CommonFeatureBlockImpl* block = r.objective->common_space();
      if (v.key == "cfl-paper" && seed == 0 && block != nullptr && o.probes) {
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
    if (!wanted("single")) continue;
    // One student per teacher, from that teacher alone, on the same transfer set.
    ReproduceRow& single = row(result.rows, "Default student from that teacher alone",
                               "control: one student per task, same transfer set, default method");
    std::vector<double> accs(n, kNaN);
    double seconds = 0;
    for (size_t i = 0; i < n; ++i) {
      const TeacherOutputCache one{{cache.outputs[i]}};
      RunContext context;
      context.cache = &one;
      const AmalgamationResult r = amalgamate({teachers[i]}, transfer, base, context);
      accs[i] = evaluate_student(*r.student, r.head, data.test, kInferenceBatch).task_accuracy[0];
      single.params = count_parameters(*r.student);
      seconds += r.seconds;
    }
    single.task_acc.push_back(accs);
    single.seconds += seconds / static_cast<double>(o.seeds);
  }
  result.seconds = now_seconds() - start;
  return result;
}

std::string mean_std(const std::vector<double>& values) {
  std::vector<double> v;
  for (double x : values)
    if (!std::isnan(x)) v.push_back(100.0 * x);
  if (v.empty()) return "—";
  double mean = 0;
  for (double x : v) mean += x;
  mean /= static_cast<double>(v.size());
  char buffer[64];
  if (v.size() == 1) {
    std::snprintf(buffer, sizeof buffer, "%.2f", mean);
    return buffer;
  }
  double var = 0;
  for (double x : v) var += (x - mean) * (x - mean);
  std::snprintf(buffer, sizeof buffer, "%.2f ± %.2f", mean,
                std::sqrt(var / static_cast<double>(v.size() - 1)));
  return buffer;
}

std::vector<double> column(const ReproduceRow& r, size_t task) {
  std::vector<double> values;
  for (const auto& seed : r.task_acc) values.push_back(task < seed.size() ? seed[task] : kNaN);
  return values;
}

// Rows compared with KD seed by seed: every student row but KD and the supervised reference.
bool compared_with_kd(const ReproduceRow& r) {
  return r.name != "KD" && r.name.rfind("Teachers", 0) != 0 && r.name != "Supervised on labels";
}

const ReproduceRow* kd_row(const BenchmarkResult& b) {
  for (const auto& r : b.rows)
    if (r.name == "KD") return &r;
  return nullptr;
}

// Row minus KD per task and on the union, in percentage points, paired by seed.
std::vector<PairedDifference> minus_kd(const ReproduceRow& r, const ReproduceRow& kd,
                                       size_t tasks) {
  const auto points = [](std::vector<double> v) {
    for (double& x : v) x *= 100;
    return v;
  };
  std::vector<PairedDifference> out;
  for (size_t i = 0; i < tasks; ++i)
    out.push_back(paired_difference(points(column(r, i)), points(column(kd, i))));
  out.push_back(paired_difference(points(r.union_acc), points(kd.union_acc)));
  return out;
}

std::string difference_text(const PairedDifference& d) {
  if (d.pairs == 0) return "—";
  char text[96];
  if (std::isnan(d.p))
    std::snprintf(text, sizeof text, "%+.2f", d.mean);
  else
    std::snprintf(text, sizeof text, "%+.2f [%+.2f, %+.2f] p=%.3f", d.mean, d.lo, d.hi, d.p);
  return text;
}

}  // namespace

ReproduceResult run_reproduce(const ReproduceOptions& o) {
  AMALGAM_CHECK(o.seeds > 0, "--seeds: must be > 0");
  for (const auto& key : o.rows) {
    bool known = key == "supervised" || key == "single";
    for (const auto& v : variants()) known = known || v.key == key;
    AMALGAM_CHECK(known, "--rows: no row called '" + key +
                             "' (supervised, kd, fitnet, cfl-paper, cfl-paper-no-mmd, "
                             "cfl-paper-no-recon, cfl-paper-fixed-space, cfl, cfl-common-space, "
                             "cfl-teachers-routing, single)");
  }
  const int threads = configure_threads(o.threads);
  const Preset preset = preset_for(o);
  const double start = now_seconds();
  ReproduceResult result;
  result.settings = {{"val_size", preset.val_size},
                     {"train_limit", preset.train_limit},
                     {"test_limit", preset.test_limit},
                     {"teacher_epochs", preset.teacher_epochs},
                     {"student_epochs", preset.student_epochs},
                     {"batch_size", preset.batch_size},
                     {"teacher_width", preset.teacher_width},
                     {"student", zoo_spec("resnet", preset.student_width, 1).arch + " width " +
                                     std::to_string(preset.student_width) + " depth 1"},
                     {"objective", ObjectiveConfig{}},
                     {"cross_domain",
                      {{"digits", o.digits_path},
                       {"digits_val", DigitsHoldOut{}.val},
                       {"digits_test", DigitsHoldOut{}.test},
                       {"clothing_per_digit", kClothingPerDigit},
                       {"digits_teacher_epochs", kDigitsTeacherEpochs}}},
                     {"seeds", o.seeds},
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
    AMALGAM_CHECK(
        std::any_of(plans.begin(), plans.end(),
                    [&](const BenchmarkPlan& p) { return p.name == name; }),
        "--benchmark: no benchmark called '" + name + "' (fmnist-2, fmnist-3, cross-domain)");
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

std::string format_reproduce(const ReproduceResult& result) {
  std::string out;
  for (const auto& b : result.benchmarks) {
    out += "### " + b.name + ": ";
    for (size_t i = 0; i < b.tasks.size(); ++i) {
      out += (i ? ", " : "") + b.tasks[i].name + " {";
      for (size_t c = 0; c < b.tasks[i].classes.size(); ++c)
        out += (c ? "," : "") + std::to_string(b.tasks[i].classes[c]);
      out += "} " + b.arch[i];
    }
    out += "\n\nTest accuracy (%), mean ± std over seeds; task columns are task-aware.\n\n| row |";
    for (const auto& t : b.tasks) out += " " + t.name + " |";
    out += " union | routing | union, oracle routing | params | s per seed |\n|---|";
    for (size_t i = 0; i < b.tasks.size(); ++i) out += "---:|";
    out += "---:|---:|---:|---:|---:|\n";
    for (const auto& r : b.rows) {
      out += "| " + r.name + " |";
      for (size_t i = 0; i < b.tasks.size(); ++i) out += " " + mean_std(column(r, i)) + " |";
      out += " " + mean_std(r.union_acc) + " | " + mean_std(r.routing_acc) + " | " +
             mean_std(r.oracle_union_acc) + " | " + (r.params ? thousands(r.params) : "—") + " | " +
             seconds_text(r.seconds) + " |\n";
    }
    out +=
        "\nRouting: share of test images whose own task gets the most probability (students: the "
        "softmax mass of each task's slice). Union, oracle routing: each image scored within its "
        "own task (the ceiling of perfect routing).\n";
    if (!b.probes.empty())
      out +=
          "\nLinear probes (%): a linear classifier trained on the labeled validation split, "
          "scored on the test split, per task (the paper objective's student).\n\n| task | CFL "
          "student common h_s | teacher "
          "common h_i | teacher raw f_i |\n|---|---:|---:|---:|\n";
    for (const auto& p : b.probes)
      out += "| " + p.task + " | " + percent(p.student_common) + " | " + percent(p.teacher_common) +
             " | " + percent(p.teacher_raw) + " |\n";
    if (const ReproduceRow* kd = kd_row(b)) {
      out +=
          "\nPaired with KD seed by seed (same seeds, so the same initialisation and data "
          "order): row minus KD in percentage points, mean [95% interval] and two-sided p "
          "(Student's t over the seeds).\n\n| row |";
      for (const auto& t : b.tasks) out += " " + t.name + " |";
      out += " union |\n|---|";
      for (size_t i = 0; i <= b.tasks.size(); ++i) out += "---:|";
      out += "\n";
      for (const auto& r : b.rows) {
        if (!compared_with_kd(r)) continue;
        out += "| " + r.name + " |";
        for (const auto& d : minus_kd(r, *kd, b.tasks.size()))
          out += " " + difference_text(d) + " |";
        out += "\n";
      }
    }
    out += "\nBenchmark wall time: " + seconds_text(b.seconds) + "\n\n";
  }
  return out;
}

nlohmann::json reproduce_json(const ReproduceResult& result) {
  nlohmann::json benchmarks = nlohmann::json::array();
  for (const auto& b : result.benchmarks) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : b.rows) {
      nlohmann::json acc = nlohmann::json::array();
      for (const auto& seed : r.task_acc) {
        nlohmann::json per_task = nlohmann::json::array();
        for (double a : seed)
          per_task.push_back(std::isnan(a) ? nlohmann::json() : nlohmann::json(a));
        acc.push_back(per_task);
      }
      rows.push_back({{"name", r.name},
                      {"description", r.description},
                      {"task_acc", acc},
                      {"union_acc", r.union_acc},
                      {"routing_acc", r.routing_acc},
                      {"oracle_union_acc", r.oracle_union_acc},
                      {"params", r.params},
                      {"seconds_per_seed", r.seconds}});
    }
    nlohmann::json probes = nlohmann::json::array();
    for (const auto& p : b.probes)
      probes.push_back({{"task", p.task},
                        {"student_common", p.student_common},
                        {"teacher_common", p.teacher_common},
                        {"teacher_raw", p.teacher_raw}});
    nlohmann::json benchmark = {{"name", b.name}, {"tasks", b.tasks}, {"teacher_arch", b.arch},
                                {"rows", rows},   {"probes", probes}, {"seconds", b.seconds}};
    // Every row against KD, paired by seed, in percentage points; the default student's also
    // under "cfl_minus_kd" (issue 15's key).
    if (const ReproduceRow* kd = kd_row(b)) {
      nlohmann::json paired = nlohmann::json::object();
      for (const auto& r : b.rows) {
        if (!compared_with_kd(r)) continue;
        const std::vector<PairedDifference> d = minus_kd(r, *kd, b.tasks.size());
        nlohmann::json per_task = nlohmann::json::object();
        for (size_t i = 0; i < b.tasks.size(); ++i) per_task[b.tasks[i].name] = to_json_value(d[i]);
        per_task["union"] = to_json_value(d.back());
        paired[r.name] = per_task;
        if (r.name == kDefaultRow) benchmark["cfl_minus_kd"] = per_task;
      }
      benchmark["minus_kd"] = paired;
    }
    benchmarks.push_back(benchmark);
  }
  return {{"settings", result.settings}, {"benchmarks", benchmarks}, {"seconds", result.seconds}};
}

}  // namespace amalgam

// `amalgam reproduce`'s results as tables: markdown (mean ± std over seeds, each row paired with
// KD seed by seed) and JSON.
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "evaluation/paired_difference.h"
#include "experiments/reproduce.h"
#include "method/objective_config.h"
#include "reporting/table.h"

namespace amalgam {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
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
  return !r.key.empty() && r.key != kd_row_key() && r.key != "supervised";
}

const ReproduceRow* kd_row(const BenchmarkResult& b) {
  for (const auto& r : b.rows)
    if (r.key == kd_row_key()) return &r;
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

std::string format_reproduce(const ReproduceResult& result) {
  const std::string split = result.settings.value("split", "test");
  const std::string scored = split == "val" ? "Validation" : "Test";
  std::string out;
  for (const auto& b : result.benchmarks) {
    out += "### " + b.name + ": ";
    for (size_t i = 0; i < b.tasks.size(); ++i) {
      out += (i ? ", " : "") + b.tasks[i].name + " {";
      for (size_t c = 0; c < b.tasks[i].classes.size(); ++c)
        out += (c ? "," : "") + std::to_string(b.tasks[i].classes[c]);
      out += "} " + b.arch[i];
    }
    out += "\n\n" + scored +
           " accuracy (%), mean ± std over seeds; task columns are task-aware.\n\n| row |";
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
        "\nRouting: share of " + split +
        " images whose own task gets the most probability (students: the "
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
      rows.push_back({{"key", r.key},
                      {"name", r.name},
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
        if (r.key == kDefaultMethod) benchmark["cfl_minus_kd"] = per_task;
      }
      benchmark["minus_kd"] = paired;
    }
    benchmarks.push_back(benchmark);
  }
  return {{"settings", result.settings}, {"benchmarks", benchmarks}, {"seconds", result.seconds}};
}

}  // namespace amalgam

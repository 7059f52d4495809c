// `amalgam eval`: accuracy of teachers and a student per task, the task-agnostic union, and the
// routing diagnostics behind it.
#include <torch/torch.h>

#include <cstdio>

#include "app/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/names.h"
#include "core/precision.h"
#include "core/runtime.h"
#include "evaluation/evaluate.h"
#include "reporting/table.h"
#include "teachers/teacher.h"
#include "training/student_io.h"

namespace amalgam {
namespace {

// eval's routing diagnostics: which task each image is given to under each rule, the union
// accuracy that follows, the ceiling of perfect routing, and the student's confusion matrix.
nlohmann::json print_routing(const std::vector<Teacher>& teachers, const Student& student,
                             const StudentScores& scores, const LabeledImages& data) {
  nlohmann::json out;
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> oracle = {"oracle (every image to its own task: the ceiling)", "100.00",
                                     "-", "-"};
  if (!teachers.empty()) {
    const TeacherRoutingScores t =
        evaluate_teacher_routing(teachers, data, RoutingOptions{}, kInferenceBatch);
    rows.push_back({"concatenated teacher logits (plain KD's target)",
                    percent(t.concatenated_routing), percent(t.concatenated), "-"});
    rows.push_back({"calibrated teacher scores (energy, prior by class count)",
                    percent(t.calibrated_routing), percent(t.calibrated), "-"});
    rows.push_back(
        {"  of which the confidently routed (" + percent(t.confident_share) + "% of images)",
         percent(t.confident_routing), "-", "-"});
    oracle[2] = percent(t.oracle);
    out["teachers"] = {
        {"concatenated", {{"routing", t.concatenated_routing}, {"union", t.concatenated}}},
        {"calibrated", {{"routing", t.calibrated_routing}, {"union", t.calibrated}}},
        {"confident", {{"routing", t.confident_routing}, {"share", t.confident_share}}},
        {"oracle_union", t.oracle}};
  }
  if (student.network) {
    rows.push_back({"the student's head (softmax mass of each task's slice)",
                    percent(scores.routing_accuracy), "-", percent(scores.union_accuracy)});
    oracle[3] = percent(scores.oracle_union_accuracy);
    out["student"] = {{"routing", scores.routing_accuracy},
                      {"union", scores.union_accuracy},
                      {"oracle_union", scores.oracle_union_accuracy},
                      {"confusion", scores.routing_confusion}};
  }
  rows.push_back(oracle);
  std::printf(
      "\nRouting: which task an image goes to, and the union accuracy (%%) that follows\n%s",
      format_table({"routing rule", "routed right", "teachers' union", "student's union"}, rows)
          .c_str());
  if (student.network) {
    std::vector<std::vector<std::string>> matrix;
    for (size_t i = 0; i < student.head.tasks.size(); ++i) {
      std::vector<std::string> row = {student.head.tasks[i].name};
      for (int64_t count : scores.routing_confusion[i]) row.push_back(thousands(count));
      matrix.push_back(row);
    }
    std::vector<std::string> header = {"true task \\ student routes to"};
    for (const auto& t : student.head.tasks) header.push_back(t.name);
    std::printf("\nThe student's routing (images)\n%s", format_table(header, matrix).c_str());
  }
  return out;
}

}  // namespace

int run_eval(const EvalCommand& c) {
  const DataOptions& d = c.data;
  const std::string& split = c.split;
  const std::vector<std::string>& teacher_paths = c.teachers;
  const std::string& student_path = c.student;
  const std::string& device = c.runtime.device;
  const std::string& json_path = c.json_path;
  configure_threads(c.runtime.threads);
  AMALGAM_CHECK(!teacher_paths.empty() || !student_path.empty(),
                "eval: give --teacher and/or --student");
  const Precision precision = parse_precision(c.precision, parse_device(device));
  AutocastGuard autocast(precision, parse_device(device));
  const std::vector<Teacher> teachers =
      teacher_paths.empty()
          ? std::vector<Teacher>{}
          : load_teachers(teacher_paths, parse_device(device), d.input, TeacherUse::kLogitsOnly);
  Student student;
  if (!student_path.empty()) student = load_student(student_path, parse_device(device));
  nlohmann::json report = {{"split", d.source.is_idx() ? split : d.source.dirs.front()},
                           {"precision", precision_name(precision)},
                           {"tasks", nlohmann::json::array()}};
  std::vector<std::vector<std::string>> rows;
  const std::vector<TaskSpec> tasks = [&] {
    std::vector<TaskSpec> list;
    if (student.network) return student.head.tasks;
    for (const auto& t : teachers) list.push_back(t.task);
    return list;
  }();
  const InputSpec& input = student.network ? student.network->input() : transfer_input(teachers);
  const LabeledImages data = load_scoring_set(d.source, split, input, tasks);
  StudentScores scores;
  if (student.network)
    scores = evaluate_student(*student.network, student.head, data, kInferenceBatch);
  for (size_t i = 0; i < tasks.size(); ++i) {
    nlohmann::json entry = {{"name", tasks[i].name}, {"classes", tasks[i].classes}};
    std::vector<std::string> row = {tasks[i].name, "-", "-"};
    if (!has_task_images(data.labels, tasks[i])) {
      row[1] = row[2] = "no images";
      report["tasks"].push_back(entry);
      rows.push_back(row);
      continue;
    }
    for (const auto& t : teachers) {
      if (t.task.classes == tasks[i].classes) {
        entry["teacher_acc"] = evaluate_teacher(t, data, kInferenceBatch);
        row[1] = percent(entry["teacher_acc"]);
      }
    }
    if (student.network) {
      entry["student_acc"] = scores.task_accuracy[i];
      row[2] = percent(scores.task_accuracy[i]);
    }
    report["tasks"].push_back(entry);
    rows.push_back(row);
  }
  std::vector<std::string> union_row = {"union (task-agnostic)", "-", "-"};
  if (!teachers.empty()) {
    report["union"]["teachers_acc"] = evaluate_ensemble(teachers, data, kInferenceBatch);
    union_row[1] = percent(report["union"]["teachers_acc"]);
  }
  if (student.network) {
    report["union"]["student_acc"] = scores.union_accuracy;
    union_row[2] = percent(scores.union_accuracy);
  }
  rows.push_back(union_row);
  std::printf("Accuracy (%%) on %s\n%s",
              (d.source.is_idx() ? "the " + split + " split" : d.source.dirs.front()).c_str(),
              format_table({"task", "teacher", "student"}, rows).c_str());
  if (tasks.size() > 1) report["routing"] = print_routing(teachers, student, scores, data);
  if (!json_path.empty()) write_text_atomically(json_path, report.dump(2) + "\n");
  return 0;
}

}  // namespace amalgam

// The user-facing commands over the library: teach, amalgamate, eval, predict. The CLI parses
// options into these structs and calls one function; the functions print results to stdout.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

#include "app/data_sources.h"
#include "distributed/process_group.h"
#include "models/layers.h"
#include "teachers/conventions.h"
#include "training/amalgamate.h"
#include "training/optimizer.h"

namespace amalgam {

/// What every command reads: where the images are and the input conventions of user files.
struct DataOptions {
  DataSource source;       ///< --data, --val-size, --split-seed, --limit, --on-bad-image
  InputConventions input;  ///< --input-size, --channels, --mean, --std
};

void to_json(nlohmann::json& j, const DataOptions& d);
void from_json(const nlohmann::json& j, DataOptions& d);

/// `amalgam teach`: trains `spec` on one task of an IDX set (`task` "NAME=CLASSES") or on a
/// labeled folder (`task` "", "NAME" or "NAME=INDICES") and writes OUT/teacher.pt.
int run_teach(const DataOptions& d, ModelSpec spec, const std::string& task, const TrainOptions& t,
              std::string out);

/// `amalgam amalgamate`: trains a student (options.student.arch: a zoo name or PATH.pt:LAYER) from
/// `teacher_refs`; writes OUT/config.json, OUT/checkpoint.pt (every options.checkpoint_every
/// steps, at epoch ends, and on SIGINT/SIGTERM, which then throw Interrupted), OUT/student.pt and,
/// when `export_path` is set, a TorchScript export. With `dist` enabled (or options.group set)
/// this process is one rank of a data-parallel run, and only rank 0 writes anything.
int run_amalgamate(const DataOptions& d, AmalgamateOptions options,
                   const std::vector<std::string>& teacher_refs, const std::string& sigmas,
                   std::string out, const std::string& export_path, bool dry_run = false,
                   const DistributedOptions& dist = {});

/// `amalgam amalgamate --resume RUN_DIR`: continues the run from its config.json and
/// checkpoint.pt (`threads` > 0 overrides the thread count; bitwise equality needs the same).
/// A data-parallel run resumes with as many ranks as it had; only rank 0 needs RUN_DIR.
int resume_amalgamate(const std::string& run_dir, int threads, const DistributedOptions& dist = {});

/// `amalgam eval`: per-task and union accuracy of teachers and/or a student on an IDX split or a
/// labeled folder; `json_path` also receives the scores.
int run_eval(const DataOptions& d, const std::string& split,
             const std::vector<std::string>& teacher_paths, const std::string& student_path,
             const std::string& device, int threads, const std::string& json_path);

/// `amalgam predict`: logits and per-task predictions of a student for every image under the
/// folders, as JSON to `out_path` (stdout when empty).
int run_predict(const DataOptions& d, const std::string& model_path, const std::string& out_path,
                const std::string& device, int threads);

}  // namespace amalgam

// The user-facing commands over the library: teach, amalgamate, eval, predict, inspect, report.
// Each command is one options struct, filled by the CLI, and one function that runs it and
// prints its results to stdout.
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
#include "training/teach.h"

namespace amalgam {

/// What every command reads: where the images are and the input conventions of user files.
struct DataOptions {
  DataSource source;       ///< --data, --val-size, --split-seed, --limit, --on-bad-image
  InputConventions input;  ///< --input-size, --channels, --mean, --std
};

/// Where a command runs: device and intra-op threads.
struct RuntimeOptions {
  std::string device = "cpu";  ///< cpu | cuda[:N]
  int threads = 0;             ///< intra-op threads (0 = all cores)
};

/// `amalgam teach`: trains `model` on one task of an IDX set (`task` "NAME=CLASSES") or on a
/// labeled folder (`task` "", "NAME" or "NAME=INDICES"); writes OUT/config.json, OUT/checkpoint.pt
/// (every `checkpoint_every` steps, at epoch ends and on SIGINT/SIGTERM) and OUT/teacher.pt.
struct TeachCommand {
  DataOptions data;                       ///< labeled images
  ModelSpec model;                        ///< the teacher's architecture
  std::string task;                       ///< --task
  TrainOptions train = teach_defaults();  ///< schedule, device, threads
  std::string out;                        ///< run directory ("" = runs/teach-<time>)
  std::string resume;                     ///< --resume RUN_DIR ("" = a new run)
  int64_t checkpoint_every = 200;  ///< steps between run checkpoints (0 = only at epoch ends)
  bool overwrite = false;          ///< --overwrite: a new run may replace the one in `out`
};
int run_teach(TeachCommand command);

/// `amalgam amalgamate`: trains a student (config.student.arch: a zoo name or PATH.pt:LAYER) from
/// `teachers`; writes OUT/config.json, OUT/checkpoint.pt (every config.checkpoint_every steps, at
/// epoch ends, and on SIGINT/SIGTERM, which then throw Interrupted), OUT/student.pt and, when
/// `export_path` is set, a TorchScript export. With `dist` enabled this process is one rank of a
/// data-parallel run, and only rank 0 writes anything.
struct AmalgamateCommand {
  DataOptions data;                   ///< the transfer set (and validation split)
  AmalgamateConfig config;            ///< the run's configuration
  std::vector<std::string> teachers;  ///< --teacher refs, in head order
  /// --val-data: a labeled folder (root/<class>/ images) for validation curves and the routing
  /// check; "": an IDX source's validation split, image folders none
  std::string val_dir;
  std::string out;          ///< run directory ("" = runs/amalgamate-<time>)
  std::string export_path;  ///< --export ("" = none)
  bool dry_run = false;     ///< print the resolved config and models, then stop
  std::string resume;       ///< --resume RUN_DIR ("" = a new run)
  bool overwrite = false;   ///< --overwrite: a new run may replace the one in `out`
  int nproc = 0;            ///< --nproc: ranks to start on this host (0 = this process)
  DistributedOptions dist;  ///< this process's rank in a data-parallel run
};
int run_amalgamate(AmalgamateCommand command);

/// What `--resume` may change in a run (each 0 = keep the run's own).
struct ResumeOverrides {
  int threads = 0;     ///< --threads (bitwise equality with an uninterrupted run needs the same)
  int64_t epochs = 0;  ///< --epochs: extends the run, a finished one included
  double lr = 0;       ///< --lr: e.g. a lower rate after the divergence guard stopped the run
  double max_loss_growth = -1;  ///< --max-loss-growth (-1 = keep the run's own)
};

/// `amalgam teach --resume RUN_DIR`: continues the teach run from its config.json and
/// checkpoint.pt (one stopped before its first checkpoint starts again from its first step).
int resume_teach(const std::string& run_dir, const ResumeOverrides& overrides);

/// `amalgam amalgamate --resume RUN_DIR`: continues the run from its config.json and
/// checkpoint.pt; a run stopped before its first checkpoint starts again from its first step.
/// A data-parallel run resumes with as many ranks as it had; only rank 0 needs RUN_DIR.
int resume_amalgamate(const std::string& run_dir, const ResumeOverrides& overrides,
                      const DistributedOptions& dist);

/// `amalgamate --nproc N`: starts N ranks of this command line (`args`, argv without the program)
/// on this host and waits for them.
int launch_amalgamate(const AmalgamateCommand& command, const std::vector<std::string>& args);

/// `amalgam eval`: per-task and union accuracy of teachers and/or a student on an IDX split or a
/// labeled folder; `json_path` also receives the scores.
struct EvalCommand {
  DataOptions data;                   ///< the scoring set
  std::string split = "test";         ///< IDX: test or val
  std::vector<std::string> teachers;  ///< --teacher refs
  std::string student;                ///< student file ("" = none)
  RuntimeOptions runtime;             ///< device and threads
  std::string precision = "fp32";     ///< fp32 | bf16 | auto: the networks' forward passes
  std::string json_path;              ///< also write the scores here ("" = no)
};
int run_eval(const EvalCommand& command);

/// `amalgam predict`: logits and per-task predictions of a student for every image under the
/// folders, as JSON to `json_path` (stdout when empty).
struct PredictCommand {
  DataOptions data;        ///< image folders
  std::string model;       ///< student file
  RuntimeOptions runtime;  ///< device and threads
  std::string json_path;   ///< where the JSON goes ("" = stdout)
};
int run_predict(const PredictCommand& command);

/// `amalgam export`: writes a run's student (`model`: RUN_DIR or its student.pt) as TorchScript
/// (forward(images in [0,1]) -> logits) with a sidecar at `out`, without retraining.
struct ExportCommand {
  std::string model;  ///< RUN_DIR or a student file written by amalgamate
  std::string out;    ///< the .pt file to write (never one of the student's own files)
  int threads = 0;    ///< intra-op threads (0 = all cores)
};
int run_export(const ExportCommand& command);

/// `amalgam inspect`: the module tree of a TorchScript file with each layer's output shape.
struct InspectCommand {
  std::string model;  ///< the TorchScript file
  DataOptions data;   ///< input.channels and the input size
};
int run_inspect(const InspectCommand& command);

/// `amalgam report`: rewrites RUN_DIR/report.html.
int run_report(const std::string& run_dir);

}  // namespace amalgam

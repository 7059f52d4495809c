// Teachers: frozen networks, each an expert on its own task, and the one place their outputs are
// taken.
#pragma once

#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/precision.h"
#include "data/task.h"
#include "models/layers.h"
#include "models/network.h"
#include "teachers/conventions.h"

namespace amalgam {

/// A frozen teacher: its network, its task and where it came from.
struct Teacher {
  std::string path;  ///< what it was loaded from: FILE or FILE:LAYER ("" in memory)
  std::string file;  ///< the file alone ("" when built in memory)
  Network network;   ///< in eval mode, no parameter requires a gradient
  TaskSpec task;     ///< the classes its logits stand for, in order
  std::vector<int64_t> feature_shape;  ///< {C,H,W} of its feature map (empty: logits only)
  /// Runs with channels-last (NHWC) weights and input: above 64x64 px, where its forward takes
  /// them and answers as before (teacher.cpp says why).
  bool channels_last = false;
};

/// Writes a trained zoo network as a teacher of `task` (weights + sidecar); `extra` entries are
/// merged into the sidecar (training record, validation accuracy).
void save_teacher(const torch::nn::Module& network, const ModelSpec& spec, const TaskSpec& task,
                  const std::string& path, const nlohmann::json& extra);

/// What a teacher is loaded for: amalgamation takes its feature map, scoring its logits only.
enum class TeacherUse {
  kAmalgamate,  ///< a TorchScript teacher needs :LAYER
  kLogitsOnly,  ///< :LAYER may be left out (eval); feature_shape is then empty
};

/// Loads a teacher onto `device` and freezes it. `ref` is "PATH" (written by `amalgam teach`) or
/// "PATH:LAYER" (a TorchScript file whose forward returns logits; LAYER's output is the feature
/// map; input conventions from its sidecar or `conventions`). A TorchScript teacher's task is
/// named by its sidecar (else the file's stem), its classes get ids 0..k-1 (load_teachers makes
/// them unique) and names from the sidecar (else "<task>:<i>").
Teacher load_teacher(const std::string& ref, c10::Device device,
                     const InputConventions& conventions = {},
                     TeacherUse use = TeacherUse::kAmalgamate);

/// Loads every teacher, renumbers the classes of TorchScript teachers so no two teachers share a
/// class id, and checks that they can be amalgamated together.
std::vector<Teacher> load_teachers(const std::vector<std::string>& refs, c10::Device device,
                                   const InputConventions& conventions,
                                   TeacherUse use = TeacherUse::kAmalgamate);

/// Wraps an in-memory network as a frozen teacher.
Teacher make_teacher(Network network, TaskSpec task);

/// Runs every teacher on `images` without autograd: the one place teacher outputs are taken.
std::vector<ModelOutput> teacher_outputs(const std::vector<Teacher>& teachers,
                                         const at::Tensor& images);

/// Every teacher's outputs for a whole image set, computed once: frozen teachers fed the same
/// images (no augmentation) give the same outputs every epoch, so later epochs only look them up.
struct TeacherOutputCache {
  std::vector<ModelOutput> outputs;  ///< per teacher: features [N,C,H,W] and logits [N,K], CPU

  /// The outputs of images `indices` (int64 [B]), moved to `device`.
  std::vector<ModelOutput> gather(const at::Tensor& indices, c10::Device device) const;
  /// Bytes held.
  int64_t bytes() const;
};

/// Bytes a TeacherOutputCache over `images` built at `precision` would hold (feature maps in
/// bfloat16 at bf16, logits float32).
int64_t teacher_cache_bytes(const std::vector<Teacher>& teachers, int64_t images,
                            Precision precision = Precision::kFp32);

/// `batch` [B,...] with its last row repeated up to `rows` rows (unchanged when B >= rows). A
/// teacher run on a padded batch sees the batch shape of every other call, so the kernels choose
/// the same algorithm and each image's outputs do not depend on how the images were batched.
at::Tensor pad_rows(const at::Tensor& batch, int64_t rows);

/// Runs teacher_outputs over uint8 `images` [N,C,H,W] in batches of `batch_size` (the last one
/// padded: pad_rows) on `device` and keeps the results on the CPU. At bf16 the teachers run under
/// autocast and their feature maps are kept in bfloat16 (half the memory); logits stay float32, and
/// gather always returns float32.
TeacherOutputCache cache_teacher_outputs(const std::vector<Teacher>& teachers,
                                         const at::Tensor& images, int64_t batch_size,
                                         c10::Device device,
                                         Precision precision = Precision::kFp32);

/// A warning when `logits` (a teacher's [N,K] over the transfer set) put nearly all images in one
/// class (over 90% with 3+ classes, 97% with 2) -- the usual sign of wrong input normalisation or
/// a wrong geometry; "" otherwise.
std::string degenerate_teacher_warning(const Teacher& teacher, const at::Tensor& logits);

/// Throws Error unless there is a teacher and the teachers' tasks are disjoint. Teachers may differ
/// in input geometry and normalisation: each network conforms the images to its own.
void check_teachers_compatible(const std::vector<Teacher>& teachers);

/// The geometry images are read at for `teachers` (and the student built for them): the most
/// channels and the largest height and width any teacher takes, so no teacher sees an image
/// upsampled that was read smaller; normalised as the first teacher with that many channels.
InputSpec transfer_input(const std::vector<Teacher>& teachers);

}  // namespace amalgam

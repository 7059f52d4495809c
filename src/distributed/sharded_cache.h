// The teacher output cache of a data-parallel run: built by all ranks together.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "teachers/teacher.h"

namespace amalgam {

class ProcessGroup;

/// The teachers' outputs for all of `images`: each rank runs the teachers on a contiguous 1/W of
/// the rows, then the ranks exchange their rows, so every rank holds the whole cache (a rank's
/// shard of the transfer set changes every epoch) for a W-th of the teacher compute.
TeacherOutputCache cache_teacher_outputs_sharded(const std::vector<Teacher>& teachers,
                                                 const at::Tensor& images, int64_t batch_size,
                                                 c10::Device device, ProcessGroup& group);

}  // namespace amalgam

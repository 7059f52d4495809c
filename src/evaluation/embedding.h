// 2-D maps of feature spaces for the report: PCA of the student's and teachers' raw feature maps
// and of the common space where CFL pulls them together.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <vector>

#include "method/common_feature_block.h"
#include "models/network.h"
#include "teachers/teacher.h"

namespace amalgam {

/// PCA maps of at most `max_points` of `images` (uint8 [N,C,H,W]); points are coloured by
/// `labels` (data-set class ids) when defined, else by the teachers' joint prediction.
/// {"colour_by": ..., "maps": {title: [{"x","y","class","group"}]}}; group 1 marks teacher points
/// in the common-space maps. `block` may be null (no common space).
nlohmann::json feature_embedding(const std::vector<Teacher>& teachers, NetworkImpl& student,
                                 CommonFeatureBlockImpl* block, const at::Tensor& images,
                                 const at::Tensor& labels, int64_t max_points);

}  // namespace amalgam

#include "distributed/sharded_cache.h"

#include <torch/torch.h>

#include "distributed/process_group.h"

namespace amalgam {
namespace {

// Rows [begin, end) of rank `r` out of `w`.
std::pair<int64_t, int64_t> rows_of(int64_t n, int r, int w) {
  return {n * r / w, n * (r + 1) / w};
}

// Fills rows owned by other ranks with theirs, in pieces of at most ~64 MiB per broadcast.
void share_rows(at::Tensor& full, int64_t n, ProcessGroup& group) {
  const int64_t row_bytes = std::max<int64_t>(1, full.numel() / std::max<int64_t>(1, n)) *
                            static_cast<int64_t>(full.element_size());
  const int64_t step = std::max<int64_t>(1, (int64_t{64} << 20) / row_bytes);
  for (int owner = 0; owner < group.size(); ++owner) {
    const auto [begin, end] = rows_of(n, owner, group.size());
    for (int64_t b = begin; b < end; b += step) {
      at::Tensor piece = full.slice(0, b, std::min(end, b + step));
      group.broadcast(piece, owner);
    }
  }
}

}  // namespace

TeacherOutputCache cache_teacher_outputs_sharded(const std::vector<Teacher>& teachers,
                                                 const at::Tensor& images, int64_t batch_size,
                                                 c10::Device device, ProcessGroup& group) {
  const int64_t n = images.size(0);
  const auto [begin, end] = rows_of(n, group.rank(), group.size());
  const TeacherOutputCache own =
      cache_teacher_outputs(teachers, images.slice(0, begin, end), batch_size, device);
  TeacherOutputCache cache;
  for (const auto& part : own.outputs) {
    ModelOutput whole;
    std::vector<int64_t> feature_shape = part.features.sizes().vec();
    std::vector<int64_t> logit_shape = part.logits.sizes().vec();
    feature_shape[0] = logit_shape[0] = n;
    whole.features = torch::empty(feature_shape, part.features.options());
    whole.logits = torch::empty(logit_shape, part.logits.options());
    whole.features.slice(0, begin, end).copy_(part.features);
    whole.logits.slice(0, begin, end).copy_(part.logits);
    share_rows(whole.features, n, group);
    share_rows(whole.logits, n, group);
    cache.outputs.push_back(whole);
  }
  return cache;
}

}  // namespace amalgam

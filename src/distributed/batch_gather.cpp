#include "distributed/batch_gather.h"

#include <torch/torch.h>

#include "distributed/process_group.h"

namespace amalgam {
namespace {

class GatherBatch : public torch::autograd::Function<GatherBatch> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor local,
                            ProcessGroup* group) {
    ctx->saved_data["begin"] = static_cast<int64_t>(group->rank()) * local.size(0);
    ctx->saved_data["rows"] = local.size(0);
    ctx->saved_data["world"] = static_cast<int64_t>(group->size());
    return group->all_gather(local.contiguous());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const at::Tensor mine =
        grads[0].narrow(0, ctx->saved_data["begin"].toInt(), ctx->saved_data["rows"].toInt());
    return {mine * static_cast<double>(ctx->saved_data["world"].toInt()), at::Tensor()};
  }
};

}  // namespace

at::Tensor gather_batch(const at::Tensor& local, ProcessGroup& group) {
  return GatherBatch::apply(local, &group);
}

}  // namespace amalgam

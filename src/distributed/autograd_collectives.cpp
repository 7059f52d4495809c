#include "distributed/autograd_collectives.h"

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

class StackOverRanks : public torch::autograd::Function<StackOverRanks> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor local,
                            ProcessGroup* group) {
    // The group outlives the step's graph; an IValue cannot hold a plain pointer.
    ctx->saved_data["group"] = reinterpret_cast<int64_t>(group);
    return group->all_gather(local.contiguous().unsqueeze(0));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto* group = reinterpret_cast<ProcessGroup*>(ctx->saved_data["group"].toInt());
    std::vector<at::Tensor> sum = {grads[0].contiguous().clone()};
    group->all_reduce_sum(sum);
    return {sum[0][group->rank()], at::Tensor()};
  }
};

}  // namespace

at::Tensor stack_over_ranks(const at::Tensor& local, ProcessGroup& group) {
  return StackOverRanks::apply(local, &group);
}

at::Tensor gather_batch(const at::Tensor& local, ProcessGroup& group) {
  return GatherBatch::apply(local, &group);
}

}  // namespace amalgam

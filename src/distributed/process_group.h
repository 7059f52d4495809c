// Data-parallel runs: the ranks of one amalgamation and the collectives they share, on LibTorch's
// c10d engine (TCPStore rendezvous; Gloo collectives for CPU runs, NCCL for CUDA runs). c10d
// stays behind this header.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace amalgam {

/// How this process joins a data-parallel run (world_size 1: it runs alone).
struct DistributedOptions {
  std::string url;         ///< tcp://HOST:PORT of rank 0's rendezvous store
  int world_size = 1;      ///< processes in the run, over all hosts
  int rank = 0;            ///< this process, 0..world_size-1; rank 0 writes every output
  double timeout_s = 300;  ///< longest wait for a rendezvous or a collective before failing
  /// Network interface of the ranks' traffic ("" = the one that routes to rank 0's host).
  std::string interface;
  /// The store at `url` belongs to a launcher (torchrun's agent): every rank connects to it.
  bool launcher_store = false;
  /// CUDA device index of a CUDA run's NCCL collectives (-1: Gloo, through CPU memory).
  int nccl_device = -1;
  /// Whether this process is one rank among several.
  bool enabled() const { return world_size > 1; }
};

/// Host and port of a tcp://HOST:PORT address.
struct DistributedAddress {
  std::string host;  ///< host name or address of rank 0
  int port = 0;      ///< TCP port of the rendezvous store
};

/// Parses `url` (tcp://HOST:PORT); throws Error naming --dist-url otherwise.
DistributedAddress parse_dist_url(const std::string& url);

/// Throws Error naming the option for a world size, rank or timeout that cannot work.
void validate(const DistributedOptions& options);

/// What a launcher's environment says about this process: torchrun's (and torch.distributed's)
/// MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK and TORCHELASTIC_USE_AGENT_STORE, or
/// SLURM's SLURM_NTASKS, SLURM_PROCID and SLURM_LOCALID beside a MASTER_ADDR the job script set.
struct LaunchEnvironment {
  std::string url;           ///< tcp://MASTER_ADDR:MASTER_PORT ("" when MASTER_ADDR is unset)
  int world_size = 0;        ///< WORLD_SIZE, else SLURM_NTASKS (0 = unset)
  int rank = -1;             ///< RANK, else SLURM_PROCID (-1 = unset)
  int local_rank = -1;       ///< LOCAL_RANK, else SLURM_LOCALID (-1 = unset): this rank's GPU
  bool agent_store = false;  ///< TORCHELASTIC_USE_AGENT_STORE=True: torchrun holds the store
  /// Whether the environment describes a data-parallel run (a url and more than one rank).
  bool present() const { return !url.empty() && world_size > 1; }
};

/// Reads the launcher variables through `get` (std::getenv by default); throws Error naming the
/// variable when one is not a number, or when WORLD_SIZE is set without RANK or MASTER_PORT.
LaunchEnvironment read_launch_environment(const char* (*get)(const char*) = nullptr);

/// The NCCL backend is compiled into this build (LibTorch with CUDA and NCCL's header).
bool nccl_compiled();

/// One process's membership in a data-parallel run. Every collective must be called by every
/// rank in the same order; a failure (a rank died, hung past the timeout, or was stopped) throws
/// Error on the ranks that see it.
class ProcessGroup {
 public:
  /// Meets the other ranks at options.url (rank 0 listens there) and connects to all of them;
  /// throws Error when the port is taken, rank 0 cannot be reached, or a rank is missing after
  /// the timeout.
  explicit ProcessGroup(const DistributedOptions& options);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  /// This process's rank.
  int rank() const { return options_.rank; }
  /// Processes in the run.
  int size() const { return options_.world_size; }
  /// The options the group was made with.
  const DistributedOptions& options() const { return options_; }

  /// Sums each tensor over the ranks, in place (any device: staged through the backend's).
  void all_reduce_sum(std::vector<at::Tensor>& tensors);
  /// Element-wise maximum over the ranks, in place.
  void all_reduce_max(at::Tensor& tensor);
  /// Overwrites `tensor` on every rank with rank `root`'s (same shape and dtype on every rank).
  void broadcast(at::Tensor& tensor, int root = 0);
  /// Concatenates every rank's `local` (same shape on every rank) along dim 0, in rank order.
  at::Tensor all_gather(const at::Tensor& local);
  /// Rank `root`'s bytes on every rank (e.g. a checkpoint or config only rank 0 has).
  std::string broadcast_bytes(const std::string& bytes, int root = 0);
  /// Throws Error on every rank when some rank's `text` differs from rank 0's; `what` names it
  /// in the message ("options", "transfer set").
  void require_same(const std::string& text, const std::string& what);
  /// Waits until every rank gets here.
  void barrier();

 private:
  struct Impl;
  [[noreturn]] void fail(const std::string& operation, const std::exception& e) const;

  DistributedOptions options_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace amalgam

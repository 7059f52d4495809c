// `--nproc N`: starts N ranks of a data-parallel run on this host as child processes of the same
// executable and watches them, so one command runs a multi-process amalgamation.
#pragma once

#include <string>
#include <vector>

#include "distributed/process_group.h"

namespace amalgam {

/// What the launcher starts.
struct LaunchOptions {
  int nproc = 1;  ///< ranks started here
  /// The run's rendezvous (url "" = a free loopback port), world size (0 = nproc) and the first
  /// rank started here (other hosts start the others).
  DistributedOptions dist;
  int threads_per_rank = 0;  ///< intra-op threads of each rank (0 = this host's cores / nproc)
  /// The run asked for --device cuda and the host has this many GPUs: local rank i gets
  /// --device cuda:(i mod cuda_devices). 0 = the ranks keep the run's own --device.
  int cuda_devices = 0;
};

/// A TCP port on 127.0.0.1 that nothing listens on at the moment of the call.
int free_loopback_port();

/// Runs this executable (/proc/self/exe) once per local rank with `args` (the command line
/// without the launcher's options) plus --rank, --world-size, --dist-url, --threads (and
/// --device cuda:K when options.cuda_devices > 0).
/// SIGINT/SIGTERM are passed on to every rank; if the launcher itself is killed, the ranks get
/// SIGTERM. When a rank fails, the others are stopped
/// (SIGTERM, then SIGKILL after `grace_s`) and its exit status is returned with a one-line
/// error on stderr; 0 when every rank succeeded.
int launch_local_ranks(const std::vector<std::string>& args, const LaunchOptions& options,
                       double grace_s = 30.0);

}  // namespace amalgam

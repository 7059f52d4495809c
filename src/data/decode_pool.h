// Worker threads for decoding files: plain threads, not an OpenMP team.
#pragma once

#include <cstdint>
#include <functional>

namespace amalgam {

/// Runs job(i) for every i in [0, n) on `workers` threads, each taking the next index when it is
/// free (a 24-megapixel photo takes longer than a thumbnail). job(i) must write only what index i
/// owns, so the result does not depend on the number of workers. Inside the workers, LibTorch's
/// own parallelism is off: an ATen kernel (a resize) runs on its worker's thread alone.
///
/// Why not at::parallel_for: its OpenMP threads spin while they wait, and beside other work on
/// the machine (a training step, another process) the decode of 1,000 500x375 JPEGs on 2 threads
/// took 13.7 s instead of 1.1 s (bench/input_pipeline.sh, one core busy elsewhere).
void parallel_decode(int64_t n, int workers, const std::function<void(int64_t)>& job);

}  // namespace amalgam

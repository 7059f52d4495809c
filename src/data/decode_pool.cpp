#include "data/decode_pool.h"

#include <c10/util/ParallelGuard.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace amalgam {

void parallel_decode(int64_t n, int workers, const std::function<void(int64_t)>& job) {
  std::atomic<int64_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  const auto work = [&] {
    // As inside at::parallel_for: an ATen kernel called here runs on this thread alone.
    const c10::ParallelGuard serial(true);
    for (int64_t i = next++; i < n; i = next++) {
      try {
        job(i);
      } catch (...) {
        const std::lock_guard<std::mutex> lock(failure_mutex);
        if (!failure) failure = std::current_exception();
        next = n;  // the others stop at their next image
      }
    }
  };
  const int threads = static_cast<int>(std::clamp<int64_t>(workers, 1, std::max<int64_t>(1, n)));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();  // the calling thread is one of the workers
  for (auto& thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace amalgam

#include "core/runtime.h"

#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <malloc.h>

#include <fstream>
#include <thread>

#include "core/error.h"

namespace amalgam {

int configure_threads(int requested) {
  AMALGAM_CHECK(requested >= 0,
                "--threads: must be >= 0 (0 = all cores), got " + std::to_string(requested));
  int threads = requested;
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return threads;
}

int spare_cores() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores - at::get_num_threads());
}

void configure_allocator() {
  // 32 MiB is glibc's largest mmap threshold on 64-bit: a training step's tensors stay below it
  // and are recycled from the heap; the heap is trimmed only past 1 GiB of free top memory.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

std::string build_description() {
  std::string text = "LibTorch " + std::to_string(TORCH_VERSION_MAJOR) + "." +
                     std::to_string(TORCH_VERSION_MINOR) + "." +
                     std::to_string(TORCH_VERSION_PATCH);
  // libtorch_cuda registers its hooks when it loads; a CPU-only LibTorch has none.
  const auto& cuda = at::detail::getCUDAHooks();
  if (!cuda.hasCUDART()) return text + ", CPU only";
  const long version = cuda.versionCUDART();  // e.g. 13020
  const int64_t devices = torch::cuda::device_count();
  return text + ", CUDA " + std::to_string(version / 1000) + "." +
         std::to_string(version % 1000 / 10) + " compiled in (" + std::to_string(devices) +
         (devices == 1 ? " GPU" : " GPUs") + " visible)";
}

std::string processor_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, name, family, model;
  const auto value = [&line] {
    const size_t colon = line.find(':');
    return colon == std::string::npos ? std::string()
                                      : line.substr(line.find_first_not_of(" \t", colon + 1));
  };
  while (std::getline(cpuinfo, line) && (name.empty() || family.empty() || model.empty())) {
    if (line.rfind("model name", 0) == 0)
      name = value();
    else if (line.rfind("cpu family", 0) == 0)
      family = value();
    else if (line.rfind("model\t", 0) == 0 || line.rfind("model ", 0) == 0)
      model = value();
  }
  if (name.empty()) return "unknown processor";
  return name + " (family " + (family.empty() ? "?" : family) + ", model " +
         (model.empty() ? "?" : model) + ")";
}

c10::Device parse_device(const std::string& text, const std::string& option) {
  if (text == "cpu") return c10::Device(c10::kCPU);
  if (text.rfind("cuda", 0) == 0) {
    AMALGAM_CHECK(
        torch::cuda::is_available(),
        option + ": '" + text + "' requested but this LibTorch build sees no CUDA device");
    try {
      return c10::Device(text);
    } catch (const std::exception&) {
      throw Error(option + ": cannot parse device '" + text + "' (expected cpu, cuda or cuda:N)");
    }
  }
  throw Error(option + ": unknown device '" + text + "' (expected cpu, cuda or cuda:N)");
}

}  // namespace amalgam

#include "core/precision.h"

#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/names.h"

// LibTorch 2.4 replaced the per-device autocast setters with ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define AMALGAM_AUTOCAST_BY_DEVICE_TYPE 1
#endif

namespace amalgam {
namespace {

bool cpu_has_bf16_flags() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    for (std::string word; words >> word;)
      if (word == "avx512_bf16" || word == "amx_bf16") return true;
    return false;  // every core lists the same flags
  }
  return false;
}

bool autocast_enabled(bool cuda) {
#ifdef AMALGAM_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::is_autocast_enabled(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

c10::ScalarType autocast_dtype(bool cuda) {
#ifdef AMALGAM_AUTOCAST_BY_DEVICE_TYPE
  return at::autocast::get_autocast_dtype(cuda ? at::kCUDA : at::kCPU);
#else
  return cuda ? at::autocast::get_autocast_gpu_dtype() : at::autocast::get_autocast_cpu_dtype();
#endif
}

void set_autocast(bool cuda, bool enabled, c10::ScalarType dtype) {
#ifdef AMALGAM_AUTOCAST_BY_DEVICE_TYPE
  at::autocast::set_autocast_dtype(cuda ? at::kCUDA : at::kCPU, dtype);
  at::autocast::set_autocast_enabled(cuda ? at::kCUDA : at::kCPU, enabled);
#else
  if (cuda) {
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(enabled);
  } else {
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(enabled);
  }
#endif
}

}  // namespace

bool has_native_bf16(c10::Device device) {
  if (device.is_cuda()) return true;
  static const bool cpu = cpu_has_bf16_flags();
  return cpu;
}

Precision parse_precision(const std::string& name, c10::Device device) {
  // "auto" is a choice of its own: it resolves to one of the others on `device`.
  enum class Choice { kFp32, kBf16, kAuto };
  static const NameTable<Choice> names = {
      {Choice::kFp32, "fp32"}, {Choice::kBf16, "bf16"}, {Choice::kAuto, "auto"}};
  switch (parse_choice("--precision", name, names)) {
    case Choice::kFp32:
      return Precision::kFp32;
    case Choice::kBf16:
      return Precision::kBf16;
    case Choice::kAuto:
      break;
  }
  return has_native_bf16(device) ? Precision::kBf16 : Precision::kFp32;
}

const char* precision_name(Precision precision) {
  return precision == Precision::kBf16 ? "bf16" : "fp32";
}

AutocastGuard::AutocastGuard(Precision precision, c10::Device device) {
  if (precision == Precision::kFp32) return;
  active_ = true;
  cuda_ = device.is_cuda();
  was_enabled_ = autocast_enabled(cuda_);
  previous_dtype_ = autocast_dtype(cuda_);
  set_autocast(cuda_, true, c10::ScalarType::BFloat16);
}

AutocastOff::AutocastOff()
    : cpu_was_enabled_(autocast_enabled(false)), cuda_was_enabled_(autocast_enabled(true)) {
  if (cpu_was_enabled_) set_autocast(false, false, autocast_dtype(false));
  if (cuda_was_enabled_) set_autocast(true, false, autocast_dtype(true));
}

AutocastOff::~AutocastOff() {
  if (cpu_was_enabled_) set_autocast(false, true, autocast_dtype(false));
  if (cuda_was_enabled_) set_autocast(true, true, autocast_dtype(true));
}

AutocastGuard::~AutocastGuard() {
  if (!active_) return;
  set_autocast(cuda_, was_enabled_, previous_dtype_);
  // Autocast caches casts of leaf weights for the region; drop them when the outermost ends.
  if (!was_enabled_) at::autocast::clear_cache();
}

}  // namespace amalgam
